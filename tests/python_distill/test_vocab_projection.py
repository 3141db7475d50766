"""The vocabulary map and the fixed width projection."""

import pytest
import torch

from clp_gpu.distill.projection import fit_projections, svd_projection
from clp_gpu.distill.vocab import VocabError, to_teacher_ids, vocab_map_from_vocabs


def test_vocab_map_by_string():
    teacher = {"<pad>": 0, "a": 1, "b": 2, "c": 3, "d": 4}
    student = {"<pad>": 0, "d": 1, "b": 2}
    table = vocab_map_from_vocabs(student, teacher)
    assert table.tolist() == [0, 4, 2]
    assert to_teacher_ids(torch.tensor([[1, 2, 0]]), table).tolist() == [[4, 2, 0]]


def test_vocab_not_a_subset_is_one_line():
    with pytest.raises(VocabError) as e:
        vocab_map_from_vocabs({"a": 0, "zz": 1, "yy": 2}, {"a": 0}, "student S", "teacher T")
    msg = str(e.value)
    assert "\n" not in msg and "2 of 3" in msg and "'zz'" in msg and "teacher T" in msg


def test_vocab_gaps_refused_when_used():
    table = vocab_map_from_vocabs({"a": 0, "b": 2}, {"a": 5, "b": 6})
    assert table.tolist() == [5, -1, 6]
    with pytest.raises(VocabError, match="id 1"):
        to_teacher_ids(torch.tensor([1]), table)


def test_svd_projection_of_a_diagonal():
    p = svd_projection(torch.diag(torch.tensor([1.0, 3.0, 2.0])), 2)
    # the largest singular directions are e2 (3) then e3 (2), signed positive
    assert torch.allclose(p, torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))


def test_svd_projection_keeps_a_low_rank_sample():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    samples = torch.randn(40, 2, generator=g) @ q[:2]  # rank 2 in width 6
    p = svd_projection(samples, 2)
    assert torch.allclose(p.T @ p, torch.eye(2), atol=1e-5)
    assert torch.allclose(samples @ p @ p.T, samples, atol=1e-4)
    with pytest.raises(ValueError, match="sample at least"):
        svd_projection(samples[:1], 2)


def test_fit_projections_samples_real_tokens_only():
    # padding positions hold huge values in the wrong direction: they must never be sampled.
    states = torch.zeros(8, 3, 4)
    states[:, :2, 0] = torch.arange(1, 9, dtype=torch.float32)[:, None]
    states[:, 2, 3] = 1000.0
    mask = torch.tensor([[1, 1, 0]] * 8)
    p = fit_projections([[states, states]], [mask], [1], 1, seed=0)[1]
    assert torch.allclose(p, torch.tensor([[1.0], [0.0], [0.0], [0.0]]))


def test_masking_rates():
    from clp_gpu.distill.data import mask_tokens

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (400, 256), generator=g)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, 0] = False  # a special token: never chosen
    inputs, labels = mask_tokens(ids, maskable, mask_id=1, vocab_size=100, generator=g)
    chosen = labels != -100
    n = maskable.sum().item()
    assert not chosen[:, 0].any()
    assert torch.equal(labels[chosen], ids[chosen])
    rate = chosen.sum().item() / n
    assert abs(rate - 0.15) < 0.005
    masked = (inputs == 1) & chosen
    kept = (inputs == ids) & chosen
    frac_mask = masked.sum().item() / chosen.sum().item()
    # a random replacement equal to the original token counts as kept (1 in 100)
    frac_kept = kept.sum().item() / chosen.sum().item()
    assert abs(frac_mask - 0.8) < 0.01
    assert abs(frac_kept - (0.1 + 0.1 / 100)) < 0.01
    assert torch.equal(inputs[~chosen], ids[~chosen])
