"""Which student layer learns from which teacher layer (TinyBERT's map, as BiStil uses it).

Hidden states are numbered as transformers returns them with ``output_hidden_states=True``:
state 0 is the embedding output, state ``k`` the output of layer ``k - 1``. Attention maps are
numbered by layer.

- Uniform (the student's layers were not copied from known teacher layers): with the layer
  ratio ``r = n_teacher / n_student``, student state ``i`` learns from teacher state ``i·r`` and
  student attention ``i`` from teacher attention ``(i+1)·r − 1``. When ``r`` is not a whole
  number the products are rounded down, which gives the same map whenever it is.
- Copied (``kept``: the teacher layers the student's layers were copied from, in order, as
  ``clp-gpu shrink`` records them in ``shrink_report.json``): student layer ``j`` learns from
  the layer it is a copy of, so its attention maps to teacher attention ``kept[j]`` and its
  output (state ``j + 1``) to teacher state ``kept[j] + 1``; state 0 to state 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

#: Files (in a student directory) that record which teacher layers the student came from.
SHRINK_REPORT = "shrink_report.json"
DISTILL_REPORT = "distill_report.json"


@dataclass(frozen=True)
class LayerMap:
    """``hidden``: (student state, teacher state) pairs, state 0 = embedding output.
    ``attention``: (student layer, teacher layer) pairs. ``kept``: the teacher layers the
    student was copied from, or None for the uniform map."""

    hidden: List[Tuple[int, int]]
    attention: List[Tuple[int, int]]
    kept: Optional[List[int]] = field(default=None)

    def as_dict(self) -> dict:
        """For reports: plain lists."""
        return {
            "rule": "copied layers" if self.kept is not None else "uniform (TinyBERT)",
            "kept": self.kept,
            "hidden": [list(p) for p in self.hidden],
            "attention": [list(p) for p in self.attention],
        }


def layer_map(n_student: int, n_teacher: int, kept: Optional[Sequence[int]] = None) -> LayerMap:
    """The layer map of a student with ``n_student`` layers and a teacher with ``n_teacher``.

    Raises ValueError (one line) when the counts are impossible or ``kept`` does not fit."""
    if n_student < 1 or n_teacher < 1:
        raise ValueError(f"layer counts must be positive (student {n_student}, teacher {n_teacher})")
    if kept is not None:
        kept = [int(k) for k in kept]
        if len(kept) != n_student:
            raise ValueError(
                f"the student has {n_student} layers but its record names {len(kept)} teacher "
                f"layers ({kept}); was it made from this teacher by `clp-gpu shrink`?"
            )
        if any(b <= a for a, b in zip(kept, kept[1:])) or kept[0] < 0 or kept[-1] >= n_teacher:
            raise ValueError(
                f"kept teacher layers {kept} are not increasing indices below the teacher's "
                f"{n_teacher} layers; was the student made from this teacher?"
            )
        hidden = [(0, 0)] + [(j + 1, k + 1) for j, k in enumerate(kept)]
        attention = [(j, k) for j, k in enumerate(kept)]
        return LayerMap(hidden, attention, kept)
    if n_student > n_teacher:
        raise ValueError(
            f"the student has more layers ({n_student}) than the teacher ({n_teacher})"
        )
    hidden = [(i, (i * n_teacher) // n_student) for i in range(n_student + 1)]
    attention = [(i, ((i + 1) * n_teacher) // n_student - 1) for i in range(n_student)]
    return LayerMap(hidden, attention, None)


def recorded_kept_layers(student_dir: Union[str, Path]) -> Optional[List[int]]:
    """The teacher layers a student directory says it was copied from: ``layers_kept`` of
    ``shrink_report.json`` (written by ``clp-gpu shrink``), else ``layer_map.kept`` of
    ``distill_report.json`` (a distilled student keeps its map); None when neither says."""
    d = Path(student_dir)
    shrink = d / SHRINK_REPORT
    if shrink.is_file():
        with open(shrink, encoding="utf-8") as f:
            kept = json.load(f).get("layers_kept")
        if kept is not None:
            return [int(k) for k in kept]
    distill = d / DISTILL_REPORT
    if distill.is_file():
        with open(distill, encoding="utf-8") as f:
            kept = (json.load(f).get("layer_map") or {}).get("kept")
        if kept is not None:
            return [int(k) for k in kept]
    return None
