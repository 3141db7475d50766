"""Width-reduced students that run: ``clp-gpu shrink --hidden-size D`` writes a skeleton whose
input embedding is D wide (E V_D, from the SVD of the teacher's embedding) while every other
tensor is still the teacher's width, which transformers cannot run. This module makes it a
runnable model the BiStil way (Ansell et al., ``compress_model``):

- config.json: ``hidden_size`` D, ``intermediate_size`` scaled by D / d (rounded), the head
  count kept (so D must be a multiple of it; ``head_dim`` set to D / heads where the config
  has one);
- every layer freshly initialised (transformers' own init, seeded), since a narrower layer
  cannot reuse the teacher's weights as they are;
- the reduced word embedding (and the reduced untied lm_head) from the skeleton; other
  embedding-space tables the skeleton still holds at width d (absolute positions, token types)
  projected the same way (``@ V_D``); vocabulary-sized biases copied;
- ``shrink_report.json`` kept (the layer map still follows the layers shrink recorded) and
  ``narrow_report.json`` added.

``clp-gpu distill`` does this by itself when its ``--student`` is such a skeleton (the
student's states are then trained against the teacher's through the fixed SVD projection of
:mod:`.projection`). ``python -m clp_gpu.distill.narrow SKELETON OUT`` writes the runnable
student on its own.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, Optional

PROJECTION_FILE = "embedding_projection.safetensors"
SHRINK_REPORT = "shrink_report.json"
NARROW_REPORT = "narrow_report.json"


def is_width_skeleton(student_dir: Path) -> bool:
    """Whether ``student_dir`` is a ``shrink --hidden-size`` skeleton (not runnable as is)."""
    return (Path(student_dir) / PROJECTION_FILE).is_file()


def _load_tensors(d: Path) -> Dict[str, Any]:
    from safetensors.torch import load_file

    tensors: Dict[str, Any] = {}
    for f in sorted(d.glob("*.safetensors")):
        if f.name != PROJECTION_FILE:
            tensors.update(load_file(f))
    return tensors


def _narrow_config(config, width: int, skeleton: Path):
    from .models import DistillError

    old = int(config.hidden_size)
    heads = int(getattr(config, "num_attention_heads", 1) or 1)
    if width % heads:
        raise DistillError(
            f"{skeleton}: width {width} is not a multiple of the {heads} attention heads; "
            f"shrink again with --hidden-size a multiple of {heads}"
        )
    config.hidden_size = width
    if getattr(config, "intermediate_size", None):
        config.intermediate_size = max(1, round(config.intermediate_size * width / old))
    if getattr(config, "head_dim", None):
        config.head_dim = width // heads
    return config, old


def build_runnable(skeleton: Path, seed: int = 0):
    """(model, report): the runnable narrow student of a ``shrink --hidden-size`` skeleton."""
    import torch
    from transformers import AutoConfig

    from .models import DistillError, _head_and_kind

    skeleton = Path(skeleton)
    report = json.loads((skeleton / SHRINK_REPORT).read_text(encoding="utf-8"))
    hidden = report.get("hidden") or {}
    width = int(hidden.get("width_after", 0))
    if not width:
        raise DistillError(f"{skeleton}/{SHRINK_REPORT} records no width reduction; run clp-gpu shrink --hidden-size again")
    config, old = _narrow_config(AutoConfig.from_pretrained(skeleton), width, skeleton)
    _, head, _ = _head_and_kind(config)
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

    cls = {"causal-lm": AutoModelForCausalLM, "masked-lm": AutoModelForMaskedLM}.get(head, AutoModel)
    torch.manual_seed(seed)
    model = cls.from_config(config)
    from safetensors.torch import load_file

    v_t = load_file(skeleton / PROJECTION_FILE)["projection"].double()  # [D, d]
    old_tensors = _load_tensors(skeleton)
    state = model.state_dict()
    taken, projected, copied = [], [], []
    reduced = {hidden.get("embedding"), hidden.get("lm_head")}
    with torch.no_grad():
        for name, t in state.items():
            src = old_tensors.get(name)
            if src is None or src.dim() != t.dim():
                continue
            if src.dim() == 2 and (name in reduced or "embed" in name):
                if tuple(src.shape) == tuple(t.shape):
                    t.copy_(src.to(t.dtype))
                    taken.append(name)
                elif src.shape[1] == old and tuple(t.shape) == (src.shape[0], width):
                    t.copy_((src.double() @ v_t.T).to(t.dtype))
                    projected.append(name)
            elif src.dim() == 1 and tuple(src.shape) == tuple(t.shape) and src.shape[0] != old:
                t.copy_(src.to(t.dtype))  # a vocabulary-sized output bias
                copied.append(name)
    if hidden.get("embedding") not in taken:
        raise DistillError(
            f"{skeleton}: the reduced embedding `{hidden.get('embedding')}` does not fit the "
            f"narrow model (expected [vocab, {width}]); was the skeleton made by clp-gpu shrink?"
        )
    model.config.architectures = [type(model).__name__]
    return model, {
        "method": "BiStil: the SVD-reduced embedding from shrink, every layer freshly "
                  "initialised (transformers' init, seeded), intermediate size scaled, heads kept",
        "seed": seed, "width_before": old, "width_after": width,
        "intermediate_size": getattr(config, "intermediate_size", None),
        "taken_from_skeleton": taken, "projected_with_V_D": projected, "copied": copied,
    }


def write_runnable(skeleton: Path, out: Path, seed: int = 0) -> Dict[str, Any]:
    """Writes the runnable student of ``skeleton`` to ``out`` (staging dir + rename)."""
    from transformers import AutoTokenizer

    from .models import DistillError

    out = Path(out)
    if out.exists():
        raise DistillError(f"{out} already exists; choose another output directory or remove it")
    model, report = build_runnable(skeleton, seed)
    stage = out.parent / f".{out.name}.narrow-partial"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        model.save_pretrained(stage, safe_serialization=True)
        AutoTokenizer.from_pretrained(skeleton).save_pretrained(stage)
        shutil.copy(Path(skeleton) / SHRINK_REPORT, stage / SHRINK_REPORT)
        (stage / NARROW_REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        stage.rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


def ensure_runnable(student_dir: Path, options) -> Path:
    """The directory to load the student from: ``student_dir``, or for a width skeleton its
    runnable form, written into a temporary directory that lives as long as ``options``."""
    if not is_width_skeleton(student_dir):
        return Path(student_dir)
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="clp-gpu-narrow-")
    options.extra["narrow_dir"] = tmp  # removed when the run's options go
    target = Path(tmp.name) / "student"
    options.extra["narrow_report"] = write_runnable(student_dir, target, options.seed)
    return target


def main(argv: Optional[list] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m clp_gpu.distill.narrow",
                                description="Make a `clp-gpu shrink --hidden-size` skeleton runnable (BiStil's way).")
    p.add_argument("skeleton")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from .models import DistillError

    try:
        r = write_runnable(Path(a.skeleton), Path(a.out), a.seed)
    except DistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(r, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
