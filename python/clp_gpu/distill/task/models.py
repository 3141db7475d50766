"""Loading the task models of ``distill-task``: the student with a (new) task head, the task
teacher (or the base teacher to fine-tune), and the checks that they fit the data."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from .. import models as base
from .data import SEQUENCE, TOKEN
from .errors import TaskError

HEAD_SUFFIX = {SEQUENCE: "ForSequenceClassification", TOKEN: "ForTokenClassification"}
TASK_WORDS = {SEQUENCE: "sequence-classification", TOKEN: "token-classification"}


def resolve(name_or_dir, what: str) -> Path:
    try:
        return base.resolve(str(name_or_dir), what)
    except base.DistillError as e:
        raise TaskError(str(e)) from None


def read_config(path: Path, what: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except Exception as e:  # transformers raises many kinds
        raise TaskError(f"{what} {path}: config.json cannot be read ({str(e).splitlines()[0]})") from None


def read_tokenizer(path: Path, what: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise TaskError(f"{what} {path}: its tokenizer cannot be loaded ({str(e).splitlines()[0]})") from None


def dtype_kw() -> dict:
    """float32 weights: ``dtype=`` (transformers >= 4.56) or ``torch_dtype=`` (older)."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": torch.float32} if (major, minor) >= (4, 56) else {"torch_dtype": torch.float32}


def _auto(task: str):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    return AutoModelForSequenceClassification if task == SEQUENCE else AutoModelForTokenClassification


def has_head_family(config, task: str) -> bool:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
        MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
    )

    names = (MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES if task == SEQUENCE
             else MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES)
    return config.model_type in names


def _pad_from_eos(config) -> None:
    """Decoders often have no pad id; their classifiers then read the last real token."""
    eos = getattr(config, "eos_token_id", None)
    if config.pad_token_id is None and eos is not None:
        config.pad_token_id = eos[0] if isinstance(eos, (list, tuple)) else eos


def load_task_model(path: Path, what: str, task: str, names: Sequence[str], attention: bool,
                    seed: int) -> Tuple[torch.nn.Module, List[str]]:
    """The model at ``path`` with a task head for ``names`` (freshly initialised, seeded, when
    the checkpoint has none that fits); returns it and the names of the tensors that were
    initialised rather than loaded."""
    config = read_config(path, what)
    if not has_head_family(config, task):
        raise TaskError(
            f"{what} {path} is a `{config.model_type}` model, which has no {TASK_WORDS[task]} head "
            f"in transformers; use a model family that has one (BERT, XLM-R, DeBERTa-v2, Llama, ...)"
        )
    kw = dict(num_labels=len(names), id2label=dict(enumerate(names)),
              label2id={n: i for i, n in enumerate(names)})
    torch.manual_seed(seed)
    try:
        model, info = _auto(task).from_pretrained(
            path, **dtype_kw(), attn_implementation="eager" if attention else None,
            output_loading_info=True, ignore_mismatched_sizes=True, **kw)
    except Exception as e:
        raise TaskError(f"{what} {path} does not load in transformers ({str(e).splitlines()[0]})") from None
    new = list(info.get("missing_keys", [])) + [m[0] if isinstance(m, tuple) else m
                                                 for m in info.get("mismatched_keys", [])]
    _pad_from_eos(model.config)
    return model, new


def load_task_teacher(path: Path, task: str, names: Sequence[str], attention: bool):
    """A fine-tuned task teacher; returns it and, for each student label, the index of the
    teacher logit with that label name."""
    config = read_config(path, "task teacher")
    arch = (getattr(config, "architectures", None) or [""])[0]
    if not arch.endswith(HEAD_SUFFIX[task]):
        raise TaskError(
            f"task teacher {path} is {arch or 'a model without a task head'}, not a "
            f"*{HEAD_SUFFIX[task]} model as the {TASK_WORDS[task]} data needs; give a teacher "
            f"fine-tuned on this task, or --teacher BASE --train-teacher"
        )
    t_names = [str(config.id2label[i]) for i in range(config.num_labels)]
    if sorted(t_names) != sorted(names):
        raise TaskError(
            f"task teacher {path} has labels ({', '.join(t_names)}) but the training data has "
            f"({', '.join(names)}); its config.json id2label must name the same labels"
        )
    try:
        model = _auto(task).from_pretrained(
            path, **dtype_kw(), attn_implementation="eager" if attention else None)
    except Exception as e:
        raise TaskError(f"task teacher {path} does not load in transformers ({str(e).splitlines()[0]})") from None
    _pad_from_eos(model.config)
    order = torch.tensor([t_names.index(n) for n in names], dtype=torch.long)
    return model, order


def check_family(student_cfg, teacher_cfg, student: Path, teacher: Path) -> None:
    if student_cfg.model_type != teacher_cfg.model_type:
        raise TaskError(
            f"the student {student} is a `{student_cfg.model_type}` model but the teacher "
            f"{teacher} is `{teacher_cfg.model_type}`; the student must be made from this "
            f"teacher (clp-gpu trim, shrink, distill)"
        )


def check_positions(config, max_len: int, what: str, path: Path) -> None:
    limit = base.positions_limit(config)
    if limit is not None and max_len > limit:
        raise TaskError(
            f"--max-seq-len {max_len} is beyond the {limit} positions of {what} {path}; give "
            f"--max-seq-len {limit} or less"
        )


def default_length(config, preferred: int = 128) -> int:
    limit = base.positions_limit(config)
    return preferred if limit is None else min(preferred, limit)


def parameter_count(model) -> int:
    return base.parameter_count(model)


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


def pad_id(tokenizer, config) -> int:
    for v in (tokenizer.pad_token_id, getattr(config, "pad_token_id", None),
              tokenizer.eos_token_id):
        if v is not None:
            return int(v)
    return 0


def maybe(x: Optional[str]) -> Optional[Path]:
    return None if x is None else Path(x)
