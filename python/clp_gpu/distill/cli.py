"""``clp-gpu distill`` on the package's console command (argparse; the flags are
:class:`.train.Options`). Also ``python -m clp_gpu.distill`` and, on several GPUs or machines,
``accelerate launch -m clp_gpu.distill ...`` / ``torchrun ... -m clp_gpu.distill ...``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

DESCRIPTION = """BiStil's bilingual distillation: a student made from the teacher by `clp-gpu trim`
(vocabulary) and `clp-gpu shrink` (layers) learns the teacher's hidden states (student state i
against teacher state i*r, embedding output included) and attention probabilities (student
layer i against teacher layer (i+1)*r - 1), or the layers it was copied from when shrink
recorded them; optionally the teacher's logits (KL at --temperature, times T^2) and its own
masked / next-token loss. Batches draw equally from each --corpus (one per language); encoders
see BERT masking (15%%, 80/10/10). OUT (written at the end in one rename) holds the student
(safetensors, config, tokenizer), distill_report.json and distill_loss.png."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clp-gpu distill", description=DESCRIPTION)
    a = p.add_argument
    a("--teacher", required=True, metavar="DIR|ID", help="the multilingual teacher, as shipped")
    a("--student", required=True, metavar="DIR", help="the student (trim, then shrink output)")
    a("--corpus", required=True, action="append", metavar="FILE",
      help="text (one document per line) or JSONL with a `text` field; repeat, one per language")
    a("--out", required=True, metavar="DIR", help="output directory (must not exist)")
    a("--seq-len", type=int, default=128, help="tokens per training sequence (default 128)")
    a("--batch-size", type=int, default=8, help="sequences per process per micro-batch (default 8)")
    a("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    a("--max-steps", type=int, default=1000, help="optimizer steps (default 1000)")
    a("--lr", type=float, default=1e-4, help="AdamW peak learning rate (default 1e-4)")
    a("--warmup-steps", type=int, default=0, help="linear warmup steps (default 0)")
    a("--schedule", choices=["linear", "cosine", "constant"], default="linear",
      help="decay after warmup (default linear, to 0 at --max-steps)")
    a("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default 0)")
    a("--max-grad-norm", type=float, default=1.0, help="gradient clipping, 0 for none (default 1)")
    a("--seed", type=int, default=0, help="seed of data order, masking, held-out split (default 0)")
    a("--eval-lines", type=int, default=100,
      help="held-out documents per corpus, never trained on (default 100)")
    a("--eval-batch-size", type=int, default=16, help="sequences per evaluation batch (default 16)")
    a("--hidden-weight", type=float, default=1.0, help="weight of the hidden-state MSE (default 1)")
    a("--attention-weight", type=float, default=1.0,
      help="weight of the attention-probability MSE (default 1)")
    a("--logit-weight", type=float, default=0.0,
      help="weight of the logit KL; needs a head on both models (default 0, as BiStil)")
    a("--lm-weight", type=float, default=0.0,
      help="weight of the student's own masked / next-token loss (default 0, as BiStil)")
    a("--temperature", type=float, default=2.0, help="temperature of the logit KL (default 2)")
    a("--mlm-probability", type=float, default=0.15, help="masking rate for encoders (default 0.15)")
    a("--projection-samples", type=int, default=512,
      help="training sequences sampled for the width projection when widths differ (default 512)")
    a("--checkpoint-every", type=int, default=0, metavar="N",
      help="write a checkpoint every N steps beside OUT, for --resume (default 0: none)")
    a("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    a("--gradient-checkpointing", action="store_true", help="recompute activations (less memory)")
    a("--mixed-precision", choices=["auto", "no", "bf16", "fp16"], default="auto",
      help="auto: bf16 on GPUs that have it, else f32 (default auto)")
    a("--log-every", type=int, default=1, help="loss-curve entry every N steps (default 1)")
    a("--quiet", action="store_true", help="no progress")
    a("--json", action="store_true", help="print the report as JSON on stdout")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Runs ``clp-gpu distill ARGV``; returns the exit code."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    from .models import DistillError
    from .train import distill

    opts = vars(args)
    as_json = opts.pop("json")
    try:
        report = distill(**opts)
    except DistillError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was written at --out; checkpoints (if any) stay for --resume",
              file=sys.stderr)
        return 130
    if as_json:
        json.dump(report, sys.stdout, indent=2)
        print()
    elif not args.quiet:
        _print_summary(report)
    return 0


def _print_summary(r: dict) -> None:
    print(f"distilled {r['student']} from {r['teacher']} into {r['out']}")
    print(f"  {r['steps']} steps, {r['tokens']} tokens, {r['seconds']:.1f} s "
          f"({r['tokens_per_second']:.0f} tokens/s, {r['seconds_per_step']:.3f} s/step)")
    p = r["parameters"]
    print(f"  parameters: student {p['student']:,} / teacher {p['teacher']:,}")
    for name, after in r["eval"]["after"].items():
        before = r["eval"]["before"][name]
        print(f"  {name}: cosine to the teacher {before['cosine']:.4f} -> {after['cosine']:.4f}")
