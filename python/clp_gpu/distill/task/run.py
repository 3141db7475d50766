"""``distill_task``: BiStil phase 2 from the data to the output directory (see the package
doc), and ``apply_sparse_diff``."""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from . import data, metrics, models, sparse, train
from .errors import TaskError
from .loss import Weights, task_loss

DIFF_FILE = "sparse_diff.safetensors"
REPORT_FILE = "distill_task_report.json"


@dataclass
class Options:
    student: str
    train: str
    out: str
    eval: Sequence[str] = ()
    task_teacher: Optional[str] = None
    teacher: Optional[str] = None
    train_teacher: bool = False
    task: Optional[str] = None
    max_seq_len: Optional[int] = None  # None: 128, or fewer if a model has fewer positions
    batch_size: int = 8
    lr: float = 5e-5
    full_epochs: float = 3.0
    sparse_epochs: float = 10.0
    full_steps: Optional[int] = None
    sparse_steps: Optional[int] = None
    density: float = 0.08
    temperature: float = 2.0
    hidden_weight: float = 1.0
    attention_weight: float = 1.0
    logit_weight: float = 1.0
    label_weight: float = 0.0
    train_layer_norm: bool = False
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    teacher_epochs: float = 3.0
    teacher_steps: Optional[int] = None
    teacher_lr: Optional[float] = None
    seed: int = 0
    quiet: bool = False
    cpu: bool = False

    @property
    def weights(self) -> Weights:
        return Weights(self.hidden_weight, self.attention_weight, self.logit_weight,
                       self.label_weight, self.temperature)


def check_options(o: Options) -> None:
    if not 0.0 < o.density <= 1.0:
        raise TaskError(f"--density {o.density} is outside (0, 1]; give a fraction such as 0.08")
    if o.temperature <= 0:
        raise TaskError(f"--temperature {o.temperature} must be positive")
    ws = [o.hidden_weight, o.attention_weight, o.logit_weight, o.label_weight]
    if min(ws) < 0 or max(ws) == 0:
        raise TaskError("loss weights must be >= 0 and at least one positive (--hidden-weight, "
                        "--attention-weight, --logit-weight, --label-weight)")
    if o.batch_size < 1 or (o.max_seq_len is not None and o.max_seq_len < 2):
        raise TaskError("--batch-size must be >= 1 and --max-seq-len >= 2")
    if o.task_teacher and (o.teacher or o.train_teacher):
        raise TaskError("give --task-teacher DIR, or --teacher BASE with --train-teacher, not both")
    if o.train_teacher and not o.teacher:
        raise TaskError("--train-teacher fine-tunes --teacher BASE; give --teacher")
    if o.teacher and not o.train_teacher:
        raise TaskError(f"--teacher {o.teacher} is a base model; add --train-teacher to fine-tune "
                        f"it on the task, or give a fine-tuned one as --task-teacher")
    if not (o.task_teacher or o.teacher) and o.weights.needs_teacher:
        raise TaskError("no teacher: give --task-teacher DIR (or --teacher BASE --train-teacher), "
                        "or set --hidden-weight, --attention-weight and --logit-weight to 0 and "
                        "--label-weight above 0 to fine-tune without one")
    if Path(o.out).exists():
        raise TaskError(f"{o.out} exists; give a new output directory (nothing was written)")


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


@dataclass
class Prepared:
    """Everything read and checked before any training."""

    task: str
    names: List[str]
    train: data.TaskFile
    evals: List[data.TaskFile]
    student_dir: Path
    student_cfg: Any
    student_tok: Any
    teacher_dir: Optional[Path]
    teacher_cfg: Any
    teacher_tok: Any


def prepare(o: Options) -> Prepared:
    """Reads the data and configs and makes every check that needs no training."""
    check_options(o)
    task = {None: None, "auto": None, "sequence": data.SEQUENCE, "token": data.TOKEN}.get(o.task, "?")
    if task == "?":
        raise TaskError(f"--task {o.task!r}: give sequence, token or auto")
    tr = data.read_task_file(o.train, task)
    names = data.label_names(tr)
    if len(names) < 2:
        raise TaskError(f"{tr.path}: only one label ({names[0]}); a classifier needs two or more")
    evals = [data.read_task_file(p, tr.task) for p in o.eval]
    for f in evals:
        data.check_labels(f, names, tr)
    if len({f.name for f in evals}) != len(evals):
        raise TaskError("two --eval files have the same name (file stem); rename one")
    s_dir = models.resolve(o.student, "student")
    s_cfg = models.read_config(s_dir, "student")
    if not models.has_head_family(s_cfg, tr.task):
        raise TaskError(
            f"student {s_dir} is a `{s_cfg.model_type}` model, which has no "
            f"{models.TASK_WORDS[tr.task]} head in transformers; use a family that has one")
    explicit = o.max_seq_len is not None
    if not explicit:
        o.max_seq_len = models.default_length(s_cfg)
    models.check_positions(s_cfg, o.max_seq_len, "student", s_dir)
    t_dir = t_cfg = t_tok = None
    if o.task_teacher or o.teacher:
        t_dir = models.resolve(o.task_teacher or o.teacher,
                               "task teacher" if o.task_teacher else "teacher")
        t_cfg = models.read_config(t_dir, "teacher")
        models.check_family(s_cfg, t_cfg, s_dir, t_dir)
        if not explicit:
            o.max_seq_len = min(o.max_seq_len, models.default_length(t_cfg))
        models.check_positions(t_cfg, o.max_seq_len, "teacher", t_dir)
        t_tok = models.read_tokenizer(t_dir, "teacher")
    s_tok = models.read_tokenizer(s_dir, "student")
    return Prepared(tr.task, names, tr, evals, s_dir, s_cfg, s_tok, t_dir, t_cfg, t_tok)


def evaluate(model, p: Prepared, tok, cfg, o: Options, device) -> Dict[str, Dict[str, Any]]:
    """Accuracy / F1 of ``model`` (under tokenizer ``tok``) on every evaluation file."""
    out = {}
    pad = models.pad_id(tok, cfg)
    for f in p.evals:
        enc = data.encode(f, tok, p.names, o.max_seq_len)
        pred = train.predict(model, enc, pad, p.task, max(o.batch_size, 32), device)
        if p.task == data.SEQUENCE:
            out[f.name] = metrics.sequence_scores(enc.labels, pred, len(p.names))
        else:
            out[f.name] = metrics.token_scores(enc.word_labels, pred, p.names)
    return out


def _accelerator(o: Options):
    from accelerate import Accelerator

    return Accelerator(cpu=o.cpu or not torch.cuda.is_available(),
                       mixed_precision="bf16" if torch.cuda.is_available() and not o.cpu else "no")


def fine_tune_teacher(acc, p: Prepared, o: Options, stage: Path) -> Dict[str, Any]:
    """``--train-teacher``: the base teacher with a fresh task head, trained on the training
    file (its own tokenizer, hard labels); saved to OUT/teacher."""
    model, _ = models.load_task_model(p.teacher_dir, "teacher", p.task, p.names,
                                      o.weights.attention > 0, o.seed)
    enc = data.encode(p.train, p.teacher_tok, p.names, o.max_seq_len)
    pad = models.pad_id(p.teacher_tok, p.teacher_cfg)
    steps = train.steps_for(len(p.train), o.batch_size, acc.num_processes, o.teacher_epochs,
                            o.teacher_steps)
    sched = train.Schedule(steps, o.teacher_lr or o.lr, o.warmup_steps, o.weight_decay, o.max_grad_norm)
    wrapped = acc.prepare(model)
    only_labels = Weights(0, 0, 0, 1, o.temperature)

    def step(batch):
        out = wrapped(**{k: v for k, v in batch.items() if k != "labels"})
        return task_loss(p.task, only_labels, out, None, batch["labels"], batch["attention_mask"])

    log = train.train(acc, wrapped, enc, pad, p.task, sched, o.batch_size, o.seed + 1, step,
                      "teacher fine-tuning", o.quiet)
    model = acc.unwrap_model(wrapped)
    if acc.is_main_process:
        model.save_pretrained(stage / "teacher", safe_serialization=True)
        p.teacher_tok.save_pretrained(stage / "teacher")
    return {"model": model, "order": torch.arange(len(p.names)), "log": log}


def say(o: Options, msg: str) -> None:
    if not o.quiet:
        print(msg, file=sys.stderr)


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
    acc = _accelerator(o)
    out = Path(o.out)
    stage = _shared_staging(acc, out)
    try:
        from .pipeline import run_pipeline

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
