"""The training loop of :mod:`.train` (accelerate; see that module's docs)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from . import data as D
from .losses import hidden_mse, kl_logits
from .models import parameter_count
from .projection import fit_projections, projections_for_pairs
from .train import (PLOT, REPORT, WEIGHTS, Batcher, Options, Setup, _forward, _schedule,
                    loss_terms, prepare, work_dir)
from .vocab import to_teacher_ids


def _accelerator(o: Options):
    from accelerate import Accelerator, DistributedDataParallelKwargs

    cuda = torch.cuda.is_available()
    mp = o.mixed_precision
    if mp == "auto":
        mp = "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    # The student's head (and BERT's pooler) take no part when only hidden states and attention
    # are distilled: DDP must not wait for their gradients.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    return Accelerator(cpu=not cuda, mixed_precision=mp, kwargs_handlers=[ddp]), mp


def _latest_checkpoint(work: Path) -> Optional[Path]:
    found = [p for p in work.glob("checkpoint-*") if (p / "state.pt").is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[1])) if found else None


def _save_checkpoint(work: Path, step: int, state: Dict[str, Any]) -> None:
    """``checkpoint-STEP/state.pt``, staged and renamed; older checkpoints removed after."""
    tmp = work / f".checkpoint-{step}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(state, tmp / "state.pt")
    final = work / f"checkpoint-{step}"
    tmp.rename(final)
    for p in work.glob("checkpoint-*"):
        if p != final:
            shutil.rmtree(p, ignore_errors=True)


@torch.no_grad()
def _teacher_projections(s: Setup, o: Options, teacher, device) -> Optional[Dict[int, torch.Tensor]]:
    """Per mapped teacher state: the fixed SVD projection to the student's width (None when the
    widths agree). Sampled from the first ``projection_samples`` training chunks."""
    if s.teacher.width == s.student.width:
        return None
    n = min(o.projection_samples, sum(len(c) for c in s.stream.corpora))
    n = max(n, s.student.width)
    wanted = sorted({t for _, t in s.lmap.hidden} | {s.teacher.layers})
    batches, masks = [], []
    pad = Batcher(s, o, 1, 0).pad
    for start in range(0, n, o.eval_batch_size):
        chunks = [c for _, c in s.stream.examples(start, min(o.eval_batch_size, n - start))]
        ids, mask = D.pad_batch(chunks, pad, o.seq_len)
        out = teacher(input_ids=to_teacher_ids(ids, s.table).to(device), attention_mask=mask.to(device),
                      output_hidden_states=True, return_dict=True)
        batches.append([h.float().cpu() for h in out.hidden_states])
        masks.append(mask)
    got = fit_projections(batches, masks, wanted, s.student.width, seed=o.seed)
    return {k: v.to(device) for k, v in got.items()}


@torch.no_grad()
def evaluate(s: Setup, o: Options, student, teacher, projections, device) -> Dict[str, Any]:
    """Per corpus, on its held-out lines: mean cosine of mean-pooled final states, hidden MSE
    per mapped pair, and logit KL (T = 1) when both have heads."""
    was_training = student.training
    student.eval()
    pad = Batcher(s, o, 1, 0).pad
    result: Dict[str, Any] = {}
    last_t = s.teacher.layers
    for name, docs in s.held_out.items():
        seqs = [s.tokenizer(d, truncation=True, max_length=o.seq_len)["input_ids"] for d in docs]
        cos, mse, kl, weight = 0.0, [0.0] * len(s.lmap.hidden), 0.0, 0.0
        for b in range(0, len(seqs), o.eval_batch_size):
            ids, mask = D.pad_batch(seqs[b : b + o.eval_batch_size], pad)
            t_ids = to_teacher_ids(ids, s.table).to(device)
            ids, mask = ids.to(device), mask.to(device)
            out_s = _forward(student, ids, mask, False)
            out_t = _forward(teacher, t_ids, mask, False)
            fs, ft = out_s.hidden_states[-1].float(), out_t.hidden_states[-1].float()
            if projections is not None:
                ft = ft @ projections[last_t]
            m = mask.unsqueeze(-1).float()
            ps, pt = (fs * m).sum(1) / m.sum(1), (ft * m).sum(1) / m.sum(1)
            cos += F.cosine_similarity(ps, pt, dim=-1).sum().item()
            w = mask.sum().item()
            weight += w
            for k, pair in enumerate(s.lmap.hidden):
                proj = projections_for_pairs([pair], projections)
                mse[k] += w * hidden_mse(out_s.hidden_states, out_t.hidden_states, [pair], proj, mask).item()
            if s.teacher.head and s.student.head:
                n = s.table.numel()
                tl = out_t.logits[..., s.table.clamp_min(0).to(device)]
                kl += w * kl_logits(out_s.logits[..., :n], tl, 1.0, mask).item()
        entry = {"lines": len(seqs), "cosine": cos / len(seqs),
                 "hidden_mse": {f"{a}->{t}": v / weight for (a, t), v in zip(s.lmap.hidden, mse)}}
        if s.teacher.head and s.student.head:
            entry["logit_kl"] = kl / weight
        result[name] = entry
    if was_training:
        student.train()
    return result


class Progress:
    """tqdm bar (loss, tokens/s, ETA) when tqdm is there, else a line every ~5% on stderr."""

    def __init__(self, o: Options, start: int, show: bool):
        self.total, self.show, self.bar = o.max_steps, show, None
        self.every = max(1, o.max_steps // 20)
        self.t0, self.start = time.time(), start
        if show and o.progress is True:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=o.max_steps, initial=start, desc="distill", unit="step",
                                file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, step: int, loss: float, tok_s: float) -> None:
        if not self.show:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4g}", tok_s=f"{tok_s:.0f}")
        elif step % self.every == 0 or step == self.total:
            rate = (step - self.start) / max(1e-9, time.time() - self.t0)
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            print(f"distill: step {step}/{self.total} loss {loss:.4g} {tok_s:.0f} tok/s "
                  f"eta {eta:.0f} s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _train_step(o, s, acc, student, teacher, opt, sched, batcher, step, projections):
    """One optimizer step (``grad_accum`` micro-batches); returns (mean terms, loss, tokens)."""
    torch.manual_seed(o.seed * 1_000_003 + step * 101 + acc.process_index)  # dropout
    sums: Dict[str, float] = {}
    total, tokens = 0.0, 0
    attn = o.attention_weight > 0
    for micro in range(o.grad_accum):
        inputs, t_ids, mask, labels = (x.to(acc.device) for x in batcher.micro(step, micro))
        with torch.no_grad(), acc.autocast():
            out_t = _forward(teacher, t_ids, mask, attn)
        last = micro == o.grad_accum - 1
        sync = contextlib.nullcontext() if last else acc.no_sync(student)
        with sync:
            with acc.autocast():
                out_s = _forward(student, inputs, mask, attn, labels if o.lm_weight > 0 else None)
                terms = loss_terms(o, s, out_s, out_t, mask, projections)
                loss = sum(getattr(o, WEIGHTS[k]) * v for k, v in terms.items())
            acc.backward(loss / o.grad_accum)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v.item() / o.grad_accum
        total += loss.item() / o.grad_accum
        tokens += int(mask.sum())
    if o.max_grad_norm > 0:
        acc.clip_grad_norm_(student.parameters(), o.max_grad_norm)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    stats = torch.tensor([total, float(tokens)] + [sums[k] for k in sorted(sums)], device=acc.device)
    stats = acc.reduce(stats, reduction="sum")
    w = acc.num_processes
    mean_terms = {k: stats[2 + i].item() / w for i, k in enumerate(sorted(sums))}
    return mean_terms, stats[0].item() / w, int(stats[1].item())


def run(o: Options) -> Dict[str, Any]:
    """Runs the whole distillation; see :mod:`.train`."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    acc, mp = _accelerator(o)
    s = prepare(o)
    acc.wait_for_everyone()  # every rank has checked OUT and the work dir before one is made
    out, work = Path(o.out), work_dir(Path(o.out))
    teacher, student = s.teacher.model, s.student.model
    teacher.requires_grad_(False)
    teacher.eval()
    teacher.to(acc.device)
    if o.gradient_checkpointing:
        student.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    student.train()
    opt = torch.optim.AdamW(student.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(o))
    state: Dict[str, Any] = {}
    latest = _latest_checkpoint(work) if o.resume else None
    if latest is not None:
        state = torch.load(latest / "state.pt", map_location="cpu", weights_only=False)
        student.load_state_dict(state["student"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    student.to(acc.device)
    projections = _teacher_projections(s, o, teacher, acc.device)
    before = state.get("eval_before") or evaluate(s, o, student, teacher, projections, acc.device)
    student, opt = acc.prepare(student, opt)
    if acc.is_main_process:
        work.mkdir(parents=True, exist_ok=True)
    step, curve = state.get("step", 0), state.get("curve", [])
    tokens, seconds = state.get("tokens", 0), state.get("seconds", 0.0)
    batcher = Batcher(s, o, acc.num_processes, acc.process_index)
    bar = Progress(o, step, acc.is_main_process and not o.quiet and o.progress is not False)
    t0 = time.time()
    try:
        while step < o.max_steps:
            terms, loss, n = _train_step(o, s, acc, student, teacher, opt, sched, batcher, step, projections)
            step += 1
            tokens += n
            elapsed = seconds + time.time() - t0
            if step % o.log_every == 0 or step == o.max_steps:
                curve.append({"step": step, "loss": loss, **terms, "lr": sched.get_last_lr()[0]})
            bar.update(step, loss, tokens / max(elapsed, 1e-9))
            if o.checkpoint_every and step % o.checkpoint_every == 0 and step < o.max_steps:
                acc.wait_for_everyone()
                if acc.is_main_process:
                    _save_checkpoint(work, step, {
                        "step": step, "student": acc.unwrap_model(student).state_dict(),
                        "optimizer": opt.optimizer.state_dict() if hasattr(opt, "optimizer") else opt.state_dict(),
                        "scheduler": sched.state_dict(), "curve": curve, "tokens": tokens,
                        "seconds": elapsed, "eval_before": before, "options": o.recorded()})
    except BaseException:
        # A failed or interrupted run keeps its work dir only for the checkpoints in it.
        if acc.is_main_process and _latest_checkpoint(work) is None:
            shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        bar.close()
    seconds += time.time() - t0
    model = acc.unwrap_model(student)
    after = evaluate(s, o, model, teacher, projections, acc.device)
    report = _report(o, s, acc, mp, step, tokens, seconds, curve, before, after, latest)
    acc.wait_for_everyone()
    if acc.is_main_process:
        _write_output(o, s, model, report, work, out)
    acc.wait_for_everyone()
    return report


def _report(o, s, acc, mp, step, tokens, seconds, curve, before, after, latest) -> Dict[str, Any]:
    return {
        "teacher": s.teacher.path, "student": o.student, "out": str(Path(o.out)),
        "narrowed": o.extra.get("narrow_report"),
        "arguments": o.recorded(), "family": s.student.family, "kind": s.student.kind,
        "heads": {"teacher": s.teacher.head, "student": s.student.head},
        "layer_map": s.lmap.as_dict(),
        "parameters": {"teacher": parameter_count(s.teacher.model),
                       "student": parameter_count(acc.unwrap_model(s.student.model))},
        "width": {"teacher": s.teacher.width, "student": s.student.width,
                  "projection": None if s.teacher.width == s.student.width else
                  "fixed per-layer SVD of sampled teacher states (top right singular vectors, uncentred)"},
        "vocabulary": {"student": int(s.table.numel()), "teacher": len(s.teacher.model.get_input_embeddings().weight)},
        "corpora": [{"name": n, "train_documents": s.train_docs[n], "train_chunks": len(c),
                     "held_out_lines": len(s.held_out[n])}
                    for n, c in zip(s.corpus_names, s.stream.corpora)],
        "processes": acc.num_processes, "device": str(acc.device), "mixed_precision": mp,
        "global_batch": o.batch_size * o.grad_accum * acc.num_processes,
        "steps": step, "tokens": tokens, "seconds": seconds,
        "seconds_per_step": seconds / max(step, 1), "tokens_per_second": tokens / max(seconds, 1e-9),
        "resumed_from_step": int(latest.name.split("-")[1]) if latest else None,
        "loss_curve": curve, "eval": {"before": before, "after": after},
    }


def _write_output(o, s, model, report, work: Path, out: Path) -> None:
    """The model, tokenizer, report and plot into the work dir, then one rename to OUT."""
    stage = work / "model"
    shutil.rmtree(stage, ignore_errors=True)
    model.save_pretrained(stage, safe_serialization=True)
    s.tokenizer.save_pretrained(stage)
    with open(stage / REPORT, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    _plot(report, stage / PLOT)
    stage.rename(out)
    shutil.rmtree(work, ignore_errors=True)


def _plot(report: Dict[str, Any], path: Path) -> None:
    """Loss curves as a PNG (matplotlib is optional: without it, no plot)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    curve = report["loss_curve"]
    if not curve:
        return
    keys = [k for k in curve[0] if k not in ("step", "lr")]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [c["step"] for c in curve]
    for k in keys:
        ax.plot(steps, [c[k] for c in curve], label=k)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title("clp-gpu distill")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
