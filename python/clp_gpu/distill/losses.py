"""The distillation loss terms, as small pure functions of tensors (the training loop only
weights and adds them). Shapes: hidden states ``[batch, seq, width]``, attention
probabilities ``[batch, heads, seq, seq]``, logits ``[..., classes]``; ``mask`` is
``[batch, seq]`` (or the logits' leading shape), 1 for real tokens and 0 for padding.
Every term is a mean, so its size does not depend on the batch or sequence length.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

Pairs = Sequence[Tuple[int, int]]


def _masked_mean(values: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of ``values`` [batch, seq, ...] over the positions where ``mask`` [batch, seq] is
    non-zero (every trailing entry counts)."""
    if mask is None:
        return values.mean()
    m = mask.to(values.dtype)
    m = m.reshape(*m.shape, *([1] * (values.dim() - m.dim())))
    per_position = values[0, 0].numel() if values.dim() > 2 else 1
    count = m.sum() * per_position
    return (values * m).sum() / count.clamp_min(1)


def hidden_mse(
    student_states: Sequence[torch.Tensor],
    teacher_states: Sequence[torch.Tensor],
    pairs: Pairs,
    projections: Optional[Sequence[Optional[torch.Tensor]]] = None,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean over ``pairs`` (student state, teacher state) of the mean squared difference per
    real token and feature. ``projections`` (one per pair, or None): a ``[teacher width,
    student width]`` matrix the teacher state is multiplied by first (for narrower students)."""
    if not pairs:
        raise ValueError("hidden_mse needs at least one layer pair")
    total = None
    for k, (si, ti) in enumerate(pairs):
        s, t = student_states[si], teacher_states[ti]
        p = projections[k] if projections is not None else None
        if p is not None:
            t = t.to(p.dtype) @ p
        if s.shape != t.shape:
            raise ValueError(
                f"student state {si} has shape {tuple(s.shape)} but teacher state {ti} "
                f"{tuple(t.shape)}; widths differ, so a projection is needed"
            )
        term = _masked_mean((s.float() - t.float()) ** 2, mask)
        total = term if total is None else total + term
    return total / len(pairs)


def attention_mse(
    student_attn: Sequence[torch.Tensor],
    teacher_attn: Sequence[torch.Tensor],
    pairs: Pairs,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean over ``pairs`` (student layer, teacher layer) of the mean squared difference of
    attention probabilities, over the entries where the teacher's probability is not exactly 0
    (the keys a padding mask or a causal mask hides) and, with ``mask``, whose query and key
    are both real tokens."""
    if not pairs:
        raise ValueError("attention_mse needs at least one layer pair")
    total = None
    for si, ti in pairs:
        s, t = student_attn[si].float(), teacher_attn[ti].float()
        if s.shape != t.shape:
            raise ValueError(
                f"student attention {si} has shape {tuple(s.shape)} but teacher attention {ti} "
                f"{tuple(t.shape)}; the head counts must match"
            )
        keep = t != 0
        if mask is not None:
            m = mask.bool()
            keep = keep & m[:, None, :, None] & m[:, None, None, :]
        keep = keep.to(s.dtype)
        term = (((s - t) ** 2) * keep).sum() / keep.sum().clamp_min(1)
        total = term if total is None else total + term
    return total / len(pairs)


def kl_logits(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """KL(teacher ‖ student) of the softmaxes at temperature ``T``, summed over classes,
    averaged over (real) positions, times T² (so its gradients keep their size as T changes)."""
    log_s = F.log_softmax(student_logits.float() / T, dim=-1)
    log_t = F.log_softmax(teacher_logits.float() / T, dim=-1)
    per_position = (log_t.exp() * (log_t - log_s)).sum(-1)
    return _masked_mean(per_position, mask) * (T * T)


def soft_cross_entropy(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    T: float,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Cross-entropy of the student's softmax at temperature ``T`` against the teacher's, summed
    over classes and averaged over (real) positions; no T² factor (BiStil's task loss)."""
    log_s = F.log_softmax(student_logits.float() / T, dim=-1)
    p_t = F.softmax(teacher_logits.float() / T, dim=-1)
    per_position = -(p_t * log_s).sum(-1)
    return _masked_mean(per_position, mask)
