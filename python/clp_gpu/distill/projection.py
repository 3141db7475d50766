"""The fixed per-layer width projection for students narrower than their teacher (BiStil's):
the teacher's hidden states are sampled on the training text (one random real token per
sequence), and the top ``d`` right singular vectors of that sample (no centring) make a
``[teacher width, d]`` matrix P with orthonormal columns. The student's state is trained
towards ``teacher_state @ P``. P is computed once, before training, and never learnt.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch


def svd_projection(samples: torch.Tensor, d: int) -> torch.Tensor:
    """``[width, d]``: the top-``d`` right singular vectors of ``samples`` [n, width] (uncentred),
    in f32, each signed so that its largest-magnitude entry is positive (deterministic)."""
    if samples.dim() != 2:
        raise ValueError(f"samples must be [n, width], not {tuple(samples.shape)}")
    n, width = samples.shape
    if not 0 < d <= width:
        raise ValueError(f"projection width {d} must be in 1..{width}")
    if n < d:
        raise ValueError(
            f"{n} sampled states cannot give {d} directions; sample at least {d} sequences"
        )
    _, _, vh = torch.linalg.svd(samples.double(), full_matrices=False)
    v = vh[:d].T.contiguous()  # [width, d]
    idx = v.abs().argmax(dim=0)
    signs = torch.sign(v[idx, torch.arange(d)])
    signs[signs == 0] = 1
    return (v * signs).float()


def sample_token_states(
    states: Sequence[torch.Tensor], mask: torch.Tensor, generator: torch.Generator
) -> List[torch.Tensor]:
    """One random real token's state per sequence, the same token for every state in
    ``states`` ([batch, seq, width] each); ``mask`` [batch, seq]. Returns [batch, width] each."""
    rows = []
    m = mask.bool().cpu()
    for b in range(m.shape[0]):
        real = torch.nonzero(m[b]).flatten()
        if real.numel() == 0:
            continue
        rows.append(int(real[torch.randint(real.numel(), (1,), generator=generator)]))
    keep = [b for b in range(m.shape[0]) if m[b].any()]
    b_idx = torch.tensor(keep, dtype=torch.long)
    t_idx = torch.tensor(rows, dtype=torch.long)
    return [s.detach().float().cpu()[b_idx, t_idx] for s in states]


@torch.no_grad()
def fit_projections(
    teacher_states_batches: Sequence[Sequence[torch.Tensor]],
    masks: Sequence[torch.Tensor],
    teacher_indices: Sequence[int],
    d: int,
    seed: int = 0,
) -> Dict[int, torch.Tensor]:
    """Per teacher state index in ``teacher_indices``: its projection to width ``d``, from the
    teacher's hidden states of several batches (each a sequence of [batch, seq, width] states,
    as ``output_hidden_states`` returns them) with their masks."""
    g = torch.Generator().manual_seed(seed)
    samples: Dict[int, List[torch.Tensor]] = {i: [] for i in teacher_indices}
    for states, mask in zip(teacher_states_batches, masks):
        picked = sample_token_states([states[i] for i in teacher_indices], mask, g)
        for i, rows in zip(teacher_indices, picked):
            samples[i].append(rows)
    return {i: svd_projection(torch.cat(samples[i]), d) for i in teacher_indices}


def projections_for_pairs(
    pairs: Sequence[Sequence[int]], by_teacher_state: Optional[Dict[int, torch.Tensor]]
) -> Optional[List[torch.Tensor]]:
    """The per-pair list :func:`clp_gpu.distill.losses.hidden_mse` takes."""
    if by_teacher_state is None:
        return None
    return [by_teacher_state[t] for _, t in pairs]
