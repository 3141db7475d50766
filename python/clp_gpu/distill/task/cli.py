"""``clp-gpu distill-task``: the command line of :func:`distill_task` and of
:func:`apply_sparse_diff` (``--apply-diff``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from .errors import TaskError

EPILOG = """\
examples:
  clp-gpu distill-task --student phase1/ --teacher xlm-roberta-base --train-teacher \\
      --train nli_en.jsonl --eval nli_en_dev.jsonl --eval nli_de_test.jsonl --out nli-student/
  clp-gpu distill-task --student phase1/ --task-teacher xlmr-ner/ --train ner_en.jsonl \\
      --eval ner_sw.jsonl --density 0.08 --out ner-student/
  clp-gpu distill-task --apply-diff nli-student/sparse_diff.safetensors --student phase1/ --out task/
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clp-gpu distill-task", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="BiStil phase 2: distil a task teacher into the phase-1 student with "
                    "lottery-ticket sparse fine-tuning; writes OUT/student, "
                    "OUT/sparse_diff.safetensors and OUT/distill_task_report.json.",
        epilog=EPILOG)
    a = p.add_argument
    a("--student", required=True, help="the phase-1 student (clp-gpu distill output)")
    a("--train", help="source-language training data (JSONL: text[/text_pair]/label or tokens/tags)")
    a("--eval", action="append", default=[], metavar="FILE",
      help="an evaluation file (repeat: source and target languages); named by its file stem")
    a("--out", required=True, help="output directory (must not exist)")
    a("--task-teacher", metavar="DIR", help="the multilingual model fine-tuned on the task, with its head")
    a("--teacher", metavar="DIR", help="the base multilingual model, with --train-teacher")
    a("--train-teacher", action="store_true", help="fine-tune --teacher on --train first (saved to OUT/teacher)")
    a("--task", choices=["auto", "sequence", "token"], default="auto",
      help="sequence or token classification (default: from the data's fields)")
    a("--max-seq-len", type=int, help="tokens per example (default 128, or the models' limit)")
    a("--batch-size", type=int, default=8, help="global batch size per step, per process (default 8)")
    a("--lr", type=float, default=5e-5, help="AdamW learning rate, linear decay (default 5e-5)")
    a("--warmup-steps", type=int, default=0)
    a("--weight-decay", type=float, default=0.0)
    a("--max-grad-norm", type=float, default=1.0)
    a("--full-epochs", type=float, default=3.0, help="phase A (dense) epochs (default 3)")
    a("--sparse-epochs", type=float, default=10.0, help="phase B (sparse) epochs (default 10)")
    a("--full-steps", type=int, help="phase A steps (overrides --full-epochs)")
    a("--sparse-steps", type=int, help="phase B steps (overrides --sparse-epochs)")
    a("--density", type=float, default=0.08,
      help="share of body parameters phase B trains, in (0, 1] (default 0.08, BiStil's)")
    a("--train-layer-norm", action="store_true",
      help="train LayerNorm weights too (BiStil freezes them)")
    a("--temperature", type=float, default=2.0, help="soft cross-entropy temperature (default 2)")
    a("--hidden-weight", type=float, default=1.0)
    a("--attention-weight", type=float, default=1.0)
    a("--logit-weight", type=float, default=1.0, help="soft cross-entropy weight")
    a("--label-weight", type=float, default=0.0, help="hard-label cross-entropy weight (default off)")
    a("--teacher-epochs", type=float, default=3.0)
    a("--teacher-steps", type=int)
    a("--teacher-lr", type=float, help="(default: --lr)")
    a("--seed", type=int, default=0)
    a("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    a("--apply-diff", metavar="DIFF",
      help="instead of training: apply DIFF to --student and write the task student to --out")
    a("--quiet", action="store_true", help="no progress output")
    a("--json", action="store_true", help="print the report as JSON on stdout")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command; returns the exit code (0 done, 1 error, 2 usage, 130 interrupted)."""
    args = parser().parse_args(argv)
    from .run import apply_sparse_diff, distill_task

    try:
        if args.apply_diff:
            report = apply_sparse_diff(args.student, args.apply_diff, args.out)
        else:
            if not args.train:
                print("error: --train FILE is required (or --apply-diff DIFF)", file=sys.stderr)
                return 2
            kw = {k: v for k, v in vars(args).items() if k not in ("apply_diff", "json")}
            report = distill_task(**kw)
    except TaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; nothing written", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    return 0
