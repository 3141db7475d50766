"""Each loss term against values worked out by hand on tiny tensors."""

import math

import pytest
import torch

from clp_gpu.distill.losses import attention_mse, hidden_mse, kl_logits, soft_cross_entropy


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_hidden_mse_by_hand():
    s = [t([[[1, 2], [3, 4]]]), t([[[0, 0], [0, 0]]])]
    te = [t([[[1, 1], [1, 1]]]), t([[[9, 9], [9, 9]]]), t([[[1, 0], [0, 2]]])]
    # pair (0,0): (0+1+4+9)/4 = 3.5; pair (1,2): (1+0+0+4)/4 = 1.25; mean 2.375
    assert hidden_mse(s, te, [(0, 0), (1, 2)]).item() == pytest.approx(2.375)
    # mask keeps token 0 only: (0+1)/2 = 0.5 and (1+0)/2 = 0.5
    mask = torch.tensor([[1, 0]])
    assert hidden_mse(s, te, [(0, 0), (1, 2)], mask=mask).item() == pytest.approx(0.5)


def test_hidden_mse_projects_the_teacher():
    swap = t([[0, 1], [1, 0], [0, 0]])  # teacher width 3 -> student width 2, columns swapped
    teacher = [t([[[2, 1, 7]]])]
    assert hidden_mse([t([[[1, 2]]])], teacher, [(0, 0)], projections=[swap]).item() == 0.0
    # [0, 0] against [1, 2]: (1 + 4) / 2
    assert hidden_mse([t([[[0, 0]]])], teacher, [(0, 0)], projections=[swap]).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="projection"):
        hidden_mse([t([[[0, 0]]])], teacher, [(0, 0)])


def test_attention_mse_drops_zero_teacher_entries():
    teacher = [t([[[[1.0, 0.0], [0.5, 0.5]]]])]
    student = [t([[[[0.5, 0.5], [0.25, 0.75]]]])]
    # entries with a non-zero teacher prob: 0.25, 0.0625, 0.0625 -> 0.375 / 3
    assert attention_mse(student, teacher, [(0, 0)]).item() == pytest.approx(0.125)
    # padding mask [1, 0]: query 0, key 0 only
    assert attention_mse(student, teacher, [(0, 0)], mask=torch.tensor([[1, 0]])).item() == pytest.approx(0.25)
    # two pairs average
    s2 = [student[0], t([[[[1.0, 0.0], [0.5, 0.5]]]])]
    assert attention_mse(s2, [teacher[0], teacher[0]], [(0, 0), (1, 1)]).item() == pytest.approx(0.0625)


def test_kl_logits_by_hand():
    teacher = t([[0.0, 0.0]])  # p = (1/2, 1/2)
    student = t([[0.0, math.log(3.0)]])  # q = (1/4, 3/4) at T = 1
    # KL = 1/2 ln(2) + 1/2 ln(2/3) = 1/2 ln(4/3)
    assert kl_logits(student, teacher, 1.0).item() == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    # at T = 2 the doubled student logits give the same q; times T^2 = 4
    assert kl_logits(student * 2, teacher, 2.0).item() == pytest.approx(2 * math.log(4 / 3), rel=1e-6)
    assert kl_logits(teacher, teacher, 3.0).item() == pytest.approx(0.0, abs=1e-7)
    # the mask averages over real positions only
    s = torch.stack([student[0], t([5.0, -5.0])])[None]
    tt = torch.stack([teacher[0], teacher[0]])[None]
    got = kl_logits(s, tt, 1.0, mask=torch.tensor([[1, 0]])).item()
    assert got == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)


def test_soft_cross_entropy_by_hand():
    teacher = t([[0.0, 0.0]])
    student = t([[0.0, 2 * math.log(3.0)]])  # at T = 2: q = (1/4, 3/4)
    # -(1/2 ln 1/4 + 1/2 ln 3/4), no T^2 factor
    want = 0.5 * math.log(4) + 0.5 * math.log(4 / 3)
    assert soft_cross_entropy(student, teacher, 2.0).item() == pytest.approx(want, rel=1e-6)


def test_losses_have_gradients():
    s = torch.zeros(1, 2, 2, requires_grad=True)
    hidden_mse([s], [torch.ones(1, 2, 2)], [(0, 0)]).backward()
    assert torch.allclose(s.grad, torch.full((1, 2, 2), -2 / 4))
