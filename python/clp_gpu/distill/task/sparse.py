"""Lottery-ticket sparse fine-tuning (LT-SFT) and the sparse difference it ships as.

The *body* is every parameter of the student's base model (``model.base_model``) that the
phase-1 student's checkpoint holds and that trains (LayerNorm weights are frozen unless asked,
as BiStil's scripts do); everything else (the new task head, and a pooler the phase-1 student
lacked) is the *head*, trained densely and stored whole.

1. Phase A trains body and head fully from θ₀.
2. :func:`select_mask` keeps the K = ⌊density × body parameters⌋ body entries with the largest
   |θ − θ₀|, chosen over the whole body at once (ties at the threshold go to the lowest flat
   index, so exactly K are kept, deterministically).
3. Every trained parameter is reset to θ₀.
4. Phase B trains again with each body gradient multiplied by its mask before clipping and
   the optimizer step. A masked entry's gradient is exactly 0 from phase B's first step, so
   AdamW's moments for it stay exactly 0 and its update is 0 · (…) = 0; weight decay is
   applied by hand to kept entries only. Entries outside the mask end bit-for-bit at θ₀
   (:func:`check_untouched` verifies it).

The difference file (safetensors): for each body tensor ``name``, ``name::idx`` (flat indices
of the kept entries, ascending, int32 or int64) and ``name::val`` (their final values, not
deltas, so applying is exact); each head tensor whole under ``name``. Its metadata holds the
task model's config and a fingerprint of the phase-1 student's weights.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import torch

from .errors import TaskError

FORMAT = "clp-gpu sparse diff 1"
META_KEY = "clp_gpu_sparse_diff"
IDX, VAL = "::idx", "::val"


def split_params(model, new_keys: Iterable[str], train_layer_norm: bool = False):
    """(body names, head names, frozen names) of ``model``'s parameters. ``new_keys``: the
    names transformers initialised freshly (not in the phase-1 student's checkpoint)."""
    prefix = model.base_model_prefix + "."
    new = set(new_keys)
    body, head, frozen = [], [], []
    for n, p in model.named_parameters():
        if n.startswith(prefix) and n not in new:
            if not train_layer_norm and _is_norm(n):
                frozen.append(n)
            else:
                body.append(n)
        else:
            head.append(n)
    return body, head, frozen


def _is_norm(name: str) -> bool:
    low = name.lower()
    return "layernorm" in low or "layer_norm" in low or ".norm." in low or low.endswith("_norm.weight")


def snapshot(model, names: Iterable[str]) -> Dict[str, torch.Tensor]:
    params = dict(model.named_parameters())
    return {n: params[n].detach().clone() for n in names}


def select_mask(
    model, originals: Dict[str, torch.Tensor], body: List[str], density: float
) -> Tuple[Dict[str, torch.Tensor], int]:
    """Boolean masks (one per body tensor) of the K entries that moved most, and K."""
    if not 0.0 < density <= 1.0:
        raise TaskError(f"--density {density} is outside (0, 1]; give a fraction such as 0.08")
    params = dict(model.named_parameters())
    total = sum(originals[n].numel() for n in body)
    k = max(1, int(density * total))
    flat = torch.cat([(params[n].detach() - originals[n]).abs().float().flatten() for n in body])
    if k >= total:
        keep = torch.ones_like(flat, dtype=torch.bool)
    else:
        # the k-th largest value; everything above it is kept, ties filled from the lowest index
        thr = torch.kthvalue(flat.cpu(), total - k + 1).values.to(flat.device)
        keep = flat > thr
        missing = k - int(keep.sum())
        if missing > 0:
            ties = torch.nonzero(flat == thr).flatten()[:missing]
            keep[ties] = True
    masks, off = {}, 0
    for n in body:
        size = originals[n].numel()
        masks[n] = keep[off:off + size].view_as(originals[n]).clone()
        off += size
    return masks, k


def reset(model, originals: Dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, t in originals.items():
            params[n].copy_(t)


def mask_gradients(model, masks: Dict[str, torch.Tensor]) -> None:
    """Multiplies each body gradient by its mask (after backward, before clipping)."""
    params = dict(model.named_parameters())
    for n, m in masks.items():
        g = params[n].grad
        if g is not None:
            g.mul_(m.to(g.dtype))


def masked_decay(model, masks: Dict[str, torch.Tensor], lr: float, weight_decay: float) -> None:
    """AdamW's decoupled weight decay on the kept body entries only."""
    if weight_decay == 0.0:
        return
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, m in masks.items():
            p = params[n]
            p.sub_(p * m.to(p.dtype) * (lr * weight_decay))


def check_untouched(model, originals, masks) -> None:
    """Raises if any body entry outside its mask moved (a bug, not bad input)."""
    params = dict(model.named_parameters())
    for n, m in masks.items():
        p = params[n].detach()
        if not torch.equal(p[~m], originals[n][~m]):
            raise RuntimeError(f"sparse fine-tuning moved entries of {n} outside the mask")


def fingerprint(model_dir) -> str:
    """sha256 over the phase-1 student's weight files (names and bytes)."""
    d = Path(model_dir)
    files = sorted(d.glob("*.safetensors")) or sorted(d.glob("*.bin"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()


def diff_tensors(model, masks: Dict[str, torch.Tensor], head: List[str]) -> Dict[str, torch.Tensor]:
    """The tensors of the difference file (see the module doc)."""
    params = dict(model.named_parameters())
    out: Dict[str, torch.Tensor] = {}
    for n, m in masks.items():
        flat = params[n].detach().flatten()
        idx = torch.nonzero(m.flatten()).flatten()
        dtype = torch.int32 if flat.numel() < 2**31 else torch.int64
        out[n + IDX] = idx.to(dtype).cpu().contiguous()
        out[n + VAL] = flat[idx].cpu().contiguous()
    for n in head:
        out[n] = params[n].detach().cpu().contiguous()
    return out


def save_diff(path, tensors: Dict[str, torch.Tensor], meta: Dict[str, str]) -> None:
    from safetensors.torch import save_file

    # one metadata entry (sorted JSON): safetensors writes several in no fixed order
    save_file(tensors, str(path), metadata={META_KEY: json.dumps({"format": FORMAT, **meta}, sort_keys=True)})


def load_diff(path):
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise TaskError(f"{path}: no such file; give the sparse_diff.safetensors distill-task wrote")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY, "{}")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(raw)
    except Exception as e:  # safetensors raises its own types for a bad header
        raise TaskError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise TaskError(f"{path}: not a distill-task sparse diff (its metadata has no {FORMAT!r})")
    return tensors, meta


def apply_to_model(model, tensors: Dict[str, torch.Tensor], path) -> None:
    """Writes the diff's values into ``model`` (a task model loaded from the phase-1 student)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, t in tensors.items():
            if key.endswith(VAL):
                continue
            name = key[: -len(IDX)] if key.endswith(IDX) else key
            if name not in params:
                raise TaskError(f"{path}: tensor {name} is not in the student; wrong student?")
            p = params[name]
            if key.endswith(IDX):
                vals = tensors[name + VAL]
                p.view(-1)[t.long().to(p.device)] = vals.to(p.device, p.dtype)
            else:
                if tuple(t.shape) != tuple(p.shape):
                    raise TaskError(
                        f"{path}: {name} is {tuple(t.shape)} but the student's is {tuple(p.shape)}"
                    )
                p.copy_(t)


def config_meta(config) -> str:
    return json.dumps(config.to_diff_dict() if hasattr(config, "to_diff_dict") else config.to_dict(),
                      sort_keys=True)
