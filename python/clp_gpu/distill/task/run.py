"""``distill_task`` (check, stage, run the pipeline, rename) and ``apply_sparse_diff``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict

from . import models, sparse
from .errors import TaskError
from .pipeline import run_pipeline
from .prepare import Options, accelerator, prepare

def _staging(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.staging-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    return stage


def _shared_staging(acc, out: Path) -> Path:
    """The staging directory, made by the main process and named the same in every process
    (``accelerate launch`` runs several)."""
    name = [f".{out.name}.staging-{os.getpid()}"]
    if acc.num_processes > 1:
        import torch.distributed as dist

        dist.broadcast_object_list(name, src=0)
    stage = out.parent / name[0]
    if acc.is_main_process:
        stage = _staging(out)
    acc.wait_for_everyone()
    return stage


def distill_task(**kwargs: Any) -> Dict[str, Any]:
    """Runs BiStil phase 2; keyword arguments are the flags of ``clp-gpu distill-task``
    (``eval`` is a list of files). Returns the report (``OUT/distill_task_report.json``)."""
    unknown = set(kwargs) - set(Options.__dataclass_fields__)
    if unknown:
        raise TypeError(f"distill_task() got unknown arguments: {', '.join(sorted(unknown))}")
    for key in ("student", "train", "out"):
        if kwargs.get(key) is None:
            raise TypeError(f"distill_task() needs {key}=")
    if isinstance(kwargs.get("eval"), (str, os.PathLike)):
        kwargs["eval"] = [kwargs["eval"]]
    o = Options(**{k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in kwargs.items()})
    o.eval = [str(e) for e in (o.eval or ())]
    p = prepare(o)
    acc = accelerator(o)
    out = Path(o.out)
    stage = _shared_staging(acc, out)
    try:
        report = run_pipeline(acc, p, o, stage)
        acc.wait_for_everyone()
        if acc.is_main_process:
            os.replace(stage, out)
    except BaseException:
        if acc.is_main_process:
            shutil.rmtree(stage, ignore_errors=True)
        raise
    return report


def apply_sparse_diff(student, diff, out) -> Dict[str, Any]:
    """Applies a ``sparse_diff.safetensors`` to the phase-1 ``student`` it was trained from and
    writes the task student (weights, config, tokenizer) to ``out``; the result is bit-for-bit
    the student ``distill-task`` wrote. Returns a small report."""
    out = Path(out)
    if out.exists():
        raise TaskError(f"{out} exists; give a new output directory (nothing was written)")
    s_dir = models.resolve(str(student), "student")
    tensors, meta = sparse.load_diff(diff)
    if meta.get("base_sha256") != sparse.fingerprint(s_dir):
        raise TaskError(
            f"{diff} was made over another phase-1 student (weights sha256 "
            f"{meta.get('base_sha256', '?')[:12]}…), not {s_dir}; apply it to the student it "
            f"was trained from")
    task, names = meta["task"], json.loads(meta["labels"])
    model, _ = models.load_task_model(s_dir, "student", task, names, False, 0)
    sparse.apply_to_model(model, tensors, diff)
    stage = _staging(out)
    try:
        model.save_pretrained(stage, safe_serialization=True)
        models.read_tokenizer(s_dir, "student").save_pretrained(stage)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return {"out": str(out), "task": task, "labels": names,
            "kept_entries": int(meta.get("k", 0)), "tensors": len(tensors)}
