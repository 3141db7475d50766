"""BiStil's pipeline end to end on a teacher built here: a BERT masked LM trained on three
made-up languages (tests/python_distill/tiny.py), then `clp-gpu trim` (two of the languages),
`clp-gpu shrink --layers 1,3,5,...` (every other layer, BiStil's map) and `clp_gpu.distill`.
Prints the before/after agreement on held-out lines, the sizes and the time per step: the
figures in README's BiStil section.

Usage: python tests/python/bistil_pipeline.py OUTDIR [--layers 6] [--width 256]
       [--teacher-steps 1500] [--distill-steps 400] [--threads 2] [--clp-gpu target/debug/clp-gpu]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python_distill"))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("outdir")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--teacher-steps", type=int, default=1500)
    p.add_argument("--distill-steps", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clp-gpu", default=None)
    a = p.parse_args()
    if a.clp_gpu:
        os.environ["CLP_GPU_BIN"] = a.clp_gpu
    import conftest  # noqa: F401  (the checkout's clp_gpu when none is installed)
    import tiny
    import torch

    torch.set_num_threads(a.threads)
    root = Path(a.outdir)
    text = tiny.make_corpora(root / "text", lines=3000)
    t0 = time.time()
    teacher = root / "teacher"
    if not teacher.exists():
        tiny.train_bert_teacher(teacher, list(text.values()), steps=a.teacher_steps,
                                layers=a.layers, width=a.width)
    teacher_s = time.time() - t0
    if not (root / "student").exists():
        tiny.engine("trim", "--model", str(teacher), "--corpus", str(text["aa"]), "--corpus",
                    str(text["bb"]), "--out", str(root / "trimmed"))
        odd = ",".join(str(i) for i in range(1, a.layers, 2))
        tiny.engine("shrink", "--model", str(root / "trimmed"), "--layers", odd, "--out",
                    str(root / "student"))
    import clp_gpu.distill

    r = clp_gpu.distill(teacher=str(teacher), student=str(root / "student"),
                        corpus=[str(text["aa"]), str(text["bb"])], out=str(root / "distilled"),
                        seq_len=64, batch_size=16, max_steps=a.distill_steps, lr=5e-4,
                        warmup_steps=a.distill_steps // 20, eval_lines=200, progress=True)
    summary = {
        "teacher": {"layers": a.layers, "width": a.width, "parameters": r["parameters"]["teacher"],
                    "train_steps": a.teacher_steps, "train_seconds": round(teacher_s, 1),
                    "final_mlm_loss": (teacher / "train_loss.txt").read_text().strip()},
        "student": {"parameters": r["parameters"]["student"], "layer_map": r["layer_map"]},
        "steps": r["steps"], "seconds_per_step": round(r["seconds_per_step"], 4),
        "tokens_per_second": round(r["tokens_per_second"]),
        "eval": {name: {"cosine_before": round(r["eval"]["before"][name]["cosine"], 4),
                        "cosine_after": round(after["cosine"], 4),
                        "last_hidden_mse_before": round(list(r["eval"]["before"][name]["hidden_mse"].values())[-1], 5),
                        "last_hidden_mse_after": round(list(after["hidden_mse"].values())[-1], 5)}
                 for name, after in r["eval"]["after"].items()},
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
