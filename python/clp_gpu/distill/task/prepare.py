"""Options, and everything ``distill-task`` reads and checks before it trains (so bad input
fails before any weights load)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

import torch

from . import data, models
from .errors import TaskError
from .loss import Weights

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


def accelerator(o: Options):
    from accelerate import Accelerator

    return Accelerator(cpu=o.cpu or not torch.cuda.is_available(),
                       mixed_precision="bf16" if torch.cuda.is_available() and not o.cpu else "no")


def say(o: Options, msg: str) -> None:
    if not o.quiet:
        print(msg, file=sys.stderr)
