"""The distillation run: checks, data, the training loop, checkpoints, evaluation, output.

The loop is plain PyTorch under accelerate (one process on a CPU or GPU, or several through
``accelerate launch`` / ``torchrun``, DDP): the student is prepared by accelerate; the teacher
is only moved to the device, frozen (``requires_grad_(False)``), kept in ``eval()`` and run
under ``torch.no_grad()``. Losses come from :mod:`.losses`, weighted by the options.

Output: ``OUT`` appears in one rename when the run is done. Until then everything lives in the
work directory ``.OUT.distill-work`` beside it: ``checkpoint-STEP/state.pt`` every
``checkpoint_every`` steps (student weights, optimizer, scheduler, loss curve, the evaluation
before training; the data position is the step itself, see :mod:`.data`), and the final model
written there before the rename. ``resume`` continues from the newest checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from . import data as D
from .layermap import layer_map, recorded_kept_layers
from .losses import attention_mse, hidden_mse, kl_logits
from .models import DistillError, Loaded, check_pair, describe, load_weights, resolve
from .projection import fit_projections, projections_for_pairs
from .vocab import VocabError, to_teacher_ids, vocab_map

REPORT = "distill_report.json"
PLOT = "distill_loss.png"


@dataclass
class Options:
    """The flags of ``clp-gpu distill`` (see ``clp-gpu distill --help``)."""

    teacher: str
    student: str
    corpus: List[str]
    out: str
    seq_len: int = 128
    batch_size: int = 8
    grad_accum: int = 1
    max_steps: int = 1000
    lr: float = 1e-4
    warmup_steps: int = 0
    schedule: str = "linear"
    weight_decay: float = 0.0
    seed: int = 0
    eval_lines: int = 100
    eval_batch_size: int = 16
    hidden_weight: float = 1.0
    attention_weight: float = 1.0
    logit_weight: float = 0.0
    lm_weight: float = 0.0
    temperature: float = 2.0
    mlm_probability: float = 0.15
    projection_samples: int = 512
    checkpoint_every: int = 0
    resume: bool = False
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"
    max_grad_norm: float = 1.0
    log_every: int = 1
    quiet: bool = False
    progress: Any = True
    extra: Dict[str, Any] = field(default_factory=dict)

    def recorded(self) -> Dict[str, Any]:
        d = asdict(self)
        d.pop("progress")
        d.pop("extra")
        return d


def work_dir(out: Path) -> Path:
    """Where a run keeps its checkpoints and stages its output."""
    return out.parent / f".{out.name}.distill-work"


def _check_options(o: Options) -> None:
    out = Path(o.out)
    if out.exists():
        raise DistillError(f"{out} already exists; choose another --out or remove it")
    work = work_dir(out)
    if o.resume and not work.is_dir():
        raise DistillError(f"--resume: no interrupted run at {work}; run without --resume")
    if not o.resume and work.exists():
        raise DistillError(f"an interrupted run left {work}; pass --resume to continue it, or remove it")
    if not o.corpus:
        raise DistillError("no --corpus given; pass one text or JSONL file per language")
    for name, v in (("--seq-len", o.seq_len), ("--batch-size", o.batch_size),
                    ("--grad-accum", o.grad_accum), ("--max-steps", o.max_steps)):
        if v < 1:
            raise DistillError(f"{name} must be at least 1 (got {v})")
    if o.schedule not in ("linear", "cosine", "constant"):
        raise DistillError(f"--schedule {o.schedule}: choose linear, cosine or constant")
    if o.mixed_precision not in ("auto", "no", "bf16", "fp16"):
        raise DistillError(f"--mixed-precision {o.mixed_precision}: choose auto, no, bf16 or fp16")
    if o.hidden_weight + o.attention_weight + o.logit_weight + o.lm_weight <= 0:
        raise DistillError("every loss weight is 0; nothing would be trained")


@dataclass
class Setup:
    """Everything checked and loaded before anything is written."""

    teacher: Loaded
    student: Loaded
    tokenizer: Any
    table: torch.Tensor
    lmap: Any
    stream: D.BalancedStream
    held_out: Dict[str, List[str]]
    corpus_names: List[str]
    train_docs: Dict[str, int]


def prepare(o: Options) -> Setup:
    """Loads and checks teacher, student, tokenizers and corpora (one-line DistillError)."""
    from transformers import AutoTokenizer

    _check_options(o)
    teacher_dir = resolve(o.teacher, "teacher")
    student_dir = resolve(o.student, "student")
    from .narrow import ensure_runnable

    student_dir = ensure_runnable(student_dir, o)
    teacher = describe(teacher_dir, "teacher")
    student = describe(student_dir, "student")
    check_pair(teacher, student, o.logit_weight, o.lm_weight, o.attention_weight)
    try:
        tok_s = AutoTokenizer.from_pretrained(student_dir)
        tok_t = AutoTokenizer.from_pretrained(teacher_dir)
    except Exception as e:
        raise DistillError(f"tokenizer of {student_dir} or {teacher_dir} does not load ({str(e).splitlines()[0]})") from None
    try:
        table = vocab_map(tok_s, tok_t, f"student {student_dir}", f"teacher {teacher_dir}")
    except VocabError as e:
        raise DistillError(str(e)) from None
    for m in (student, teacher):
        if m.positions is not None and o.seq_len > m.positions:
            raise DistillError(
                f"--seq-len {o.seq_len} is beyond the {m.positions} positions of {m.path}; "
                f"use --seq-len {m.positions} or less"
            )
    if student.kind == "encoder" and tok_s.mask_token_id is None:
        raise DistillError(f"the student's tokenizer in {student_dir} has no mask token; encoders are trained masked")
    kept = recorded_kept_layers(student_dir)
    try:
        lmap = layer_map(student.layers, teacher.layers, kept)
    except ValueError as e:
        raise DistillError(f"student {student_dir}: {e}") from None
    corpora, held, names, sizes = [], {}, [], {}
    for path in o.corpus:
        name = Path(path).name
        if name in held:
            name = str(path)
        try:
            docs = D.read_corpus(Path(path))
            train, held_out = D.split_held_out(docs, o.eval_lines, o.seed, name)
            chunks = D.chunk_documents(tok_s, train, o.seq_len)
        except D.CorpusError as e:
            raise DistillError(str(e)) from None
        if not chunks:
            raise DistillError(f"corpus {path} gives no tokens with the student's tokenizer")
        corpora.append(chunks)
        held[name] = held_out
        names.append(name)
        sizes[name] = len(train)
    load_weights(teacher)
    load_weights(student)
    return Setup(teacher, student, tok_s, table, lmap, D.BalancedStream(corpora, o.seed), held, names, sizes)


def _schedule(o: Options):
    def factor(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / (o.warmup_steps + 1)
        if o.schedule == "constant":
            return 1.0
        rest = max(1, o.max_steps - o.warmup_steps)
        done = min(1.0, (step - o.warmup_steps) / rest)
        if o.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * done))
        return 1.0 - done

    return factor


def _forward(model: torch.nn.Module, ids, mask, attentions: bool, labels=None):
    kwargs = dict(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                  output_attentions=attentions, return_dict=True)
    if labels is not None:
        kwargs["labels"] = labels
    return model(**kwargs)


class Batcher:
    """The micro-batches of a step for one rank (see :mod:`.data` for the balance rule)."""

    def __init__(self, s: Setup, o: Options, world: int, rank: int):
        self.s, self.o, self.world, self.rank = s, o, world, rank
        tok = s.tokenizer
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        self.special = set(tok.all_special_ids)

    def micro(self, step: int, micro: int):
        o, s = self.o, self.s
        per_micro = o.batch_size * self.world
        start = (step * o.grad_accum + micro) * per_micro
        picked = s.stream.examples(start, per_micro)
        ids, mask = D.pad_batch([c for _, c in picked], self.pad, o.seq_len)
        g = torch.Generator().manual_seed(o.seed * 1_000_003 + step * 1009 + micro)
        if s.student.kind == "encoder":
            maskable = mask.bool() & ~torch.isin(ids, torch.tensor(sorted(self.special)))
            inputs, labels = D.mask_tokens(ids, maskable, s.tokenizer.mask_token_id,
                                           len(s.tokenizer), g, o.mlm_probability)
        else:
            inputs, labels = ids, torch.where(mask.bool(), ids, torch.full_like(ids, -100))
        rows = slice(self.rank * o.batch_size, (self.rank + 1) * o.batch_size)
        inputs, labels, mask = inputs[rows], labels[rows], mask[rows]
        return inputs, to_teacher_ids(inputs, s.table), mask, labels


def loss_terms(o: Options, s: Setup, out_s, out_t, mask, projections) -> Dict[str, torch.Tensor]:
    """The weighted terms of one micro-batch (only those with a non-zero weight)."""
    terms: Dict[str, torch.Tensor] = {}
    if o.hidden_weight > 0:
        terms["hidden_mse"] = hidden_mse(out_s.hidden_states, out_t.hidden_states, s.lmap.hidden,
                                         projections_for_pairs(s.lmap.hidden, projections), mask)
    if o.attention_weight > 0:
        terms["attention_mse"] = attention_mse(out_s.attentions, out_t.attentions, s.lmap.attention, mask)
    if o.logit_weight > 0:
        n = s.table.numel()
        t_logits = out_t.logits[..., s.table.clamp_min(0).to(out_t.logits.device)]
        t_logits = t_logits.masked_fill((s.table < 0).to(t_logits.device), -1e9)
        terms["logit_kl"] = kl_logits(out_s.logits[..., :n], t_logits, o.temperature, mask)
    if o.lm_weight > 0:
        terms["lm"] = out_s.loss
    return terms


WEIGHTS = {"hidden_mse": "hidden_weight", "attention_mse": "attention_weight",
           "logit_kl": "logit_weight", "lm": "lm_weight"}


def distill(**kwargs: Any) -> Dict[str, Any]:
    """Runs a distillation from keyword options (see :class:`Options`); returns the report."""
    known = set(Options.__dataclass_fields__)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise TypeError(f"unknown argument(s) {', '.join(unknown)}")
    if isinstance(kwargs.get("corpus"), (str, os.PathLike)):
        kwargs["corpus"] = [kwargs["corpus"]]
    kwargs["corpus"] = [os.fspath(c) for c in kwargs.get("corpus") or []]
    for k in ("teacher", "student", "out"):
        if k in kwargs:
            kwargs[k] = os.fspath(kwargs[k])
    from .loop import run

    return run(Options(**kwargs))
