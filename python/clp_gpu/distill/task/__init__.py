"""BiStil phase 2 (``clp-gpu distill-task``): a task student for zero-shot cross-lingual
transfer, distilled from a task teacher by lottery-ticket sparse fine-tuning.

The phase-1 student (``clp-gpu distill`` output) gets a new task head and learns, on
source-language labelled data, the task teacher's hidden states and attention maps (the layer
map of ``distill``) and its task logits (soft cross-entropy at temperature T, no T² factor;
an optional hard-label term). Phase A trains the whole body; the K = density × body entries
that moved most are kept, everything is reset, and phase B trains only those (the head always
densely). The result is written whole (``OUT/student``) and as a sparse difference over the
phase-1 student (``OUT/sparse_diff.safetensors``) that :func:`apply_sparse_diff` turns back
into the same student, bit for bit. Every evaluation file is scored (accuracy / F1) for the
teacher, the dense phase-A student and the sparse student, in
``OUT/distill_task_report.json``.

Modules: :mod:`.data` (JSONL tasks, labels, subword alignment), :mod:`.loss`,
:mod:`.sparse` (mask, reset, masked gradients, the diff), :mod:`.train` (loop, prediction,
timing), :mod:`.metrics`, :mod:`.models`, :mod:`.prepare` (options and the checks made before
training), :mod:`.pipeline` (the run), :mod:`.run` (entry points: staging, rename, applying a
diff), :mod:`.cli`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .errors import TaskError


def distill_task(**kwargs: Any) -> Dict[str, Any]:
    """Runs BiStil phase 2. Keyword arguments are the flags of ``clp-gpu distill-task``
    (``task_teacher=``, ``train=``, ``eval=[files]``, ``density=`` ...); returns the report.
    Raises :class:`TaskError` (one line) on bad input, leaving nothing at ``out``."""
    from .run import distill_task as _run

    return _run(**kwargs)


def apply_sparse_diff(student, diff, out) -> Dict[str, Any]:
    """Applies ``diff`` (``OUT/sparse_diff.safetensors``) to the phase-1 ``student`` it was
    trained from; writes the task student to ``out`` (bit for bit ``OUT/student``)."""
    from .run import apply_sparse_diff as _apply

    return _apply(student, diff, out)


def main(argv: Optional[List[str]] = None) -> int:
    """``clp-gpu distill-task ARGS``; returns the exit code."""
    from .cli import main as _main

    return _main(argv)


__all__ = ["TaskError", "apply_sparse_diff", "distill_task", "main"]
