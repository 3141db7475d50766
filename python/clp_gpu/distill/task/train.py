"""The training loop shared by the teacher's fine-tuning and the student's two phases, and
batched prediction. One ``accelerate.Accelerator`` places the trained model (DDP under
``accelerate launch``, bf16 autocast on GPUs); the teacher is never prepared by it. Every
process draws the same global batch order from the seed and takes its own share of each
global batch, so a run's global batch does not depend on the process count."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch

from . import sparse
from .data import TOKEN, Encoded, collate


@dataclass
class Schedule:
    steps: int
    lr: float
    warmup: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0


def steps_for(n_records: int, batch_size: int, world: int, epochs: float,
              steps: Optional[int]) -> int:
    """``steps`` when given, else ``epochs`` passes over the data (at least one step)."""
    if steps is not None:
        return int(steps)
    per_epoch = max(1, n_records // (batch_size * world))
    return max(1, int(math.ceil(epochs * per_epoch)))


def global_batches(n: int, batch: int, seed: int):
    """Endless global batches (lists of record indices): a fresh seeded permutation per
    epoch, the last short batch dropped unless it is the only one."""
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=g).tolist()
        full = max(1, n // batch)
        for b in range(full):
            yield order[b * batch:(b + 1) * batch]


class Bar:
    """A progress bar (tqdm when installed, else a line every tenth of the run) on stderr."""

    def __init__(self, label: str, total: int, quiet: bool):
        self.label, self.total, self.quiet, self.n = label, total, quiet, 0
        self.t0 = time.perf_counter()
        self.bar = None
        if not quiet:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=label, file=sys.stderr, leave=True)
            except ImportError:
                print(f"{label}: {total} steps", file=sys.stderr)

    def update(self, loss: float, tokens: int) -> None:
        self.n += 1
        if self.quiet:
            return
        rate = tokens / max(1e-9, time.perf_counter() - self.t0)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{rate:.0f}", refresh=False)
            self.bar.update(1)
        elif self.n == self.total or self.n % max(1, self.total // 10) == 0:
            eta = (time.perf_counter() - self.t0) / self.n * (self.total - self.n)
            print(f"{self.label}: step {self.n}/{self.total} loss {loss:.4f} "
                  f"{rate:.0f} tokens/s ETA {eta:.0f} s", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(acc, model, enc: Encoded, pad_id: int, task: str, sched: Schedule, batch_size: int,
          seed: int, step_fn: Callable, label: str, quiet: bool,
          masks: Optional[Dict[str, torch.Tensor]] = None) -> dict:
    """Runs ``sched.steps`` optimizer steps of ``step_fn(batch) -> (loss, parts)`` on
    ``model`` (already prepared by ``acc``). With ``masks``, body gradients are masked (LT-SFT
    phase B; see :mod:`.sparse`). Returns steps, seconds, tokens and the loss curve."""
    inner = acc.unwrap_model(model)
    named = [(n, p) for n, p in inner.named_parameters() if p.requires_grad]
    masked = set(masks or ())
    groups = [{"params": [p for n, p in named if n not in masked], "weight_decay": sched.weight_decay}]
    if masked:
        groups.append({"params": [p for n, p in named if n in masked], "weight_decay": 0.0})
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=sched.lr)
    warm = max(0, sched.warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (sched.steps - step) / max(1, sched.steps - warm))

    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    opt = acc.prepare(opt)
    world, rank = acc.num_processes, acc.process_index
    batches = global_batches(len(enc.input_ids), batch_size * world, seed)
    every = max(1, sched.steps // 200)
    curve: List[List[float]] = []
    bar = Bar(label, sched.steps, quiet or not acc.is_main_process)
    tokens, t0 = 0, time.perf_counter()
    model.train()
    for step in range(sched.steps):
        rows = next(batches)
        rows = rows[rank::world] or rows[:1]
        batch = {k: v.to(acc.device) for k, v in collate(enc, rows, pad_id, task).items()}
        with acc.autocast():
            loss, parts = step_fn(batch)
        acc.backward(loss)
        if masks:
            sparse.mask_gradients(inner, masks)
        if sched.max_grad_norm > 0:
            acc.clip_grad_norm_([p for _, p in named], sched.max_grad_norm)
        if masks:
            sparse.masked_decay(inner, masks, lr_sched.get_last_lr()[0], sched.weight_decay)
        opt.step()
        lr_sched.step()
        opt.zero_grad(set_to_none=True)
        stats = torch.tensor([float(loss.detach()), *[parts[k] for k in sorted(parts)],
                              float(batch["attention_mask"].sum())], device=acc.device)
        if world > 1:  # the global batch's mean loss and token count
            stats = acc.reduce(stats, reduction="sum")
            stats[:-1] /= world
        stats = stats.tolist()
        tokens += int(stats[-1])
        value = stats[0]
        if step % every == 0 or step == sched.steps - 1:
            curve.append([step + 1, *stats[:-1]])
        bar.update(value, tokens)
    bar.close()
    seconds = time.perf_counter() - t0
    return {"steps": sched.steps, "seconds": round(seconds, 3), "tokens": tokens,
            "tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
            "loss_terms": ["step", "loss", *sorted(parts)] if sched.steps else ["step", "loss"],
            "loss_curve": curve}


@torch.no_grad()
def predict(model, enc: Encoded, pad_id: int, task: str, batch_size: int, device,
            limit: Optional[int] = None) -> list:
    """Predicted label ids: one per record (sequence) or one per word, None for words cut
    off by truncation (token)."""
    was_training = model.training
    model.eval()
    n = len(enc.input_ids) if limit is None else min(limit, len(enc.input_ids))
    out = []
    for start in range(0, n, batch_size):
        rows = list(range(start, min(n, start + batch_size)))
        batch = collate(enc, rows, pad_id, task)
        batch.pop("labels")
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
        pred = logits.argmax(-1)
        for b, r in enumerate(rows):
            if task == TOKEN:
                out.append([None if pos < 0 else int(pred[b, pos]) for pos in enc.first[r]])
            else:
                out.append(int(pred[b]))
    model.train(was_training)
    return out


def forward_ms(model, enc: Encoded, pad_id: int, task: str, batch_size: int, device,
               limit: int = 256) -> float:
    """Milliseconds of forward pass per example (batched, no gradients), after a warm-up."""
    predict(model, enc, pad_id, task, batch_size, device, limit=batch_size)
    if torch.cuda.is_available() and str(device).startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = min(limit, len(enc.input_ids))
    predict(model, enc, pad_id, task, batch_size, device, limit=n)
    if torch.cuda.is_available() and str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return round((time.perf_counter() - t0) * 1000.0 / n, 4)


