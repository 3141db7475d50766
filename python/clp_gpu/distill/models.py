"""Loading teacher and student, and the checks that they belong together."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch


class DistillError(ValueError):
    """Bad input to a distillation: the message is one line naming the file or model and the fix."""


@dataclass
class Loaded:
    """A model with what the loop needs to know about it."""

    model: Optional[torch.nn.Module]
    path: str
    family: str  # config.model_type
    kind: str  # "encoder" or "decoder"
    head: Optional[str]  # "masked-lm", "causal-lm" or None
    architecture: str
    layers: int
    width: int
    positions: Optional[int]
    config: Any = None


def resolve(name_or_dir: str, what: str) -> Path:
    """A model directory, or a hub id resolved in the local Hugging Face cache (no download)."""
    p = Path(name_or_dir)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise DistillError(f"{what} {p} has no config.json; pass a Hugging Face model directory")
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_dir, local_files_only=True))
    except Exception:
        raise DistillError(
            f"{what} {name_or_dir} is neither a directory nor a model in the local Hugging Face "
            "cache; download it first (huggingface-cli download) or pass its directory"
        ) from None


def _head_and_kind(config) -> tuple:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    arch = (getattr(config, "architectures", None) or [""])[0]
    if arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
        head = "causal-lm"
    elif arch.endswith("ForMaskedLM"):
        head = "masked-lm"
    else:
        head = None
    mt = config.model_type
    decoder = head == "causal-lm" or (
        mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and mt not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )
    return arch, head, "decoder" if decoder else "encoder"


def positions_limit(config) -> Optional[int]:
    """How many positions the model can take (RoBERTa-style models reserve padding_idx + 1)."""
    n = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if n is None:
        return None
    if config.model_type in ("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl"):
        n -= (config.pad_token_id or 0) + 1
    return int(n)


def describe(path: Path, what: str) -> Loaded:
    """What config.json says about the model at ``path`` (no weights read yet)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:  # transformers raises many kinds
        raise DistillError(f"{what} {path}: config.json cannot be read ({str(e).splitlines()[0]})") from None
    arch, head, kind = _head_and_kind(config)
    layers = getattr(config, "num_hidden_layers", None)
    if layers is None or getattr(config, "hidden_size", None) is None:
        raise DistillError(f"{what} {path}: config.json names no num_hidden_layers / hidden_size")
    loaded = Loaded(None, str(path), config.model_type, kind, head, arch, int(layers),
                    int(config.hidden_size), positions_limit(config))
    loaded.config = config
    return loaded


def _dtype_kwarg(dtype) -> dict:
    """transformers >= 4.56 calls it ``dtype``, older versions ``torch_dtype``."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def load_weights(m: Loaded, dtype=torch.float32) -> None:
    """Loads ``m.model``: with its head if it has one, eager attention (so attention
    probabilities come back), no progress bars."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    cls = {"causal-lm": AutoModelForCausalLM, "masked-lm": AutoModelForMaskedLM}.get(m.head, AutoModel)
    hf_logging.disable_progress_bar()
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        m.model = cls.from_pretrained(m.path, attn_implementation="eager", **_dtype_kwarg(dtype))
    except Exception as e:
        raise DistillError(f"{m.path} does not load in transformers ({str(e).splitlines()[0]})") from None
    finally:
        hf_logging.set_verbosity(level)


def check_pair(teacher: Loaded, student: Loaded, logit_weight: float, lm_weight: float,
               attention_weight: float) -> None:
    """One-line errors for a teacher and student that cannot be distilled together."""
    if teacher.family != student.family:
        raise DistillError(
            f"the teacher {teacher.path} is a `{teacher.family}` model but the student "
            f"{student.path} is `{student.family}`; the student must be made from this teacher "
            "(clp-gpu trim, then clp-gpu shrink)"
        )
    if teacher.head and student.head and teacher.architecture != student.architecture:
        raise DistillError(
            f"head layouts differ: teacher {teacher.path} is {teacher.architecture}, student "
            f"{student.path} is {student.architecture}; use a student made from this teacher"
        )
    if logit_weight > 0 and not (teacher.head and student.head):
        lacking = teacher.path if not teacher.head else student.path
        raise DistillError(
            f"--logit-weight needs a language-model head on both models, and {lacking} has none "
            "(its config.json architectures name no *ForMaskedLM / *ForCausalLM); set "
            "--logit-weight 0"
        )
    if lm_weight > 0 and not student.head:
        raise DistillError(
            f"--lm-weight needs the student's language-model head and {student.path} has none; "
            "set --lm-weight 0"
        )
    heads_t = getattr(teacher.config, "num_attention_heads", None)
    heads_s = getattr(student.config, "num_attention_heads", None)
    if attention_weight > 0 and heads_t != heads_s:
        raise DistillError(
            f"the student {student.path} has {heads_s} attention heads and the teacher "
            f"{teacher.path} {heads_t}; attention maps can only be compared head by head "
            "(set --attention-weight 0, or keep the head count when narrowing)"
        )


def parameter_count(model: torch.nn.Module) -> int:
    """Distinct parameters (tied ones counted once)."""
    seen, n = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


def read_json(path: Path) -> Optional[dict]:
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return None
