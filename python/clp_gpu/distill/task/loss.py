"""BiStil's phase-2 loss: hidden-state MSE and attention MSE over the layer map (as
``distill``), soft cross-entropy of the task logits at temperature T against the teacher's
(no T² factor), and an optional hard-label cross-entropy; each with a weight. For token
classification the two logit terms count only labelled positions (first subwords)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .. import losses
from .data import IGNORE, TOKEN


@dataclass(frozen=True)
class Weights:
    hidden: float = 1.0
    attention: float = 1.0
    logits: float = 1.0
    labels: float = 0.0
    temperature: float = 2.0

    @property
    def needs_teacher(self) -> bool:
        return self.hidden > 0 or self.attention > 0 or self.logits > 0


def task_loss(
    task: str,
    weights: Weights,
    student_out,
    teacher_out,
    labels: torch.Tensor,
    attention_mask: torch.Tensor,
    layer_map=None,
    projections: Optional[Sequence[Optional[torch.Tensor]]] = None,
    label_order: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, Dict[str, float]]:
    """(weighted total, each term's value). ``label_order``: teacher logit index for each
    student label (the teacher may list the labels in another order)."""
    s_logits = student_out.logits
    parts: Dict[str, torch.Tensor] = {}
    if weights.hidden > 0:
        parts["hidden_mse"] = losses.hidden_mse(
            student_out.hidden_states, teacher_out.hidden_states, layer_map.hidden, projections,
            attention_mask)
    if weights.attention > 0:
        parts["attention_mse"] = losses.attention_mse(
            student_out.attentions, teacher_out.attentions, layer_map.attention, attention_mask)
    if weights.logits > 0:
        t_logits = teacher_out.logits
        if label_order is not None:
            t_logits = t_logits.index_select(-1, label_order.to(t_logits.device))
        mask = (labels != IGNORE) if task == TOKEN else None
        parts["soft_ce"] = losses.soft_cross_entropy(s_logits, t_logits, weights.temperature, mask)
    if weights.labels > 0:
        parts["label_ce"] = F.cross_entropy(
            s_logits.float().reshape(-1, s_logits.shape[-1]), labels.reshape(-1),
            ignore_index=IGNORE)
    scale = {"hidden_mse": weights.hidden, "attention_mse": weights.attention,
             "soft_ce": weights.logits, "label_ce": weights.labels}
    total = sum(scale[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}
