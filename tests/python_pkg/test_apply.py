"""apply: the report it returns, and the same model files as the CLI with the same arguments."""

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

import clp_gpu
from conftest import cli_binary, model_files


def run_cli(*args):
    done = subprocess.run([cli_binary(), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("top_k", [10, "all"])
def test_apply_returns_the_report_and_writes_what_the_cli_writes(pair, out_parent, top_k):
    source, helper = pair
    out = out_parent / "py"
    report = clp_gpu.apply(source, helper, out, top_k=top_k, weighting="softmax" if top_k == 10 else "clp",
                           backend="cpu", provenance=out_parent / "py.jsonl", progress=False)
    assert report == json.loads((out / "clp_transfer.json").read_text())
    assert report["tool"] == "clp-gpu" and report["backend"] == "cpu"
    assert report["method"]["top_k"] == str(top_k)
    counts = report["counts"]
    assert counts["overlap"] == 120 + 1  # the shared words and <|endoftext|>
    assert counts["computed"] == 40 and counts["fallback"] == 0
    assert report["target_tokenizer"]["tokens"] == 161
    assert report["arguments"][:2] == ["clp-gpu", "apply"]
    assert all(math.isfinite(v) for v in report["timings_s"].values())

    cli_out = out_parent / "cli"
    args = ["--source", str(source), "--helper", str(helper), "--out", str(cli_out),
            "--top-k", str(top_k), "--weighting", "softmax" if top_k == 10 else "clp",
            "--backend", "cpu", "--provenance", str(out_parent / "cli.jsonl"), "--quiet"]
    run_cli("apply", *args)
    assert model_files(out) == model_files(cli_out)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(model_files(out))
    assert (out_parent / "py.jsonl").read_bytes() == (out_parent / "cli.jsonl").read_bytes()
    cli_report = json.loads((cli_out / "clp_transfer.json").read_text())
    for key in ("counts", "method", "matching", "special_tokens", "fallback", "target_rows"):
        assert report[key] == cli_report[key], key
    leftovers = sorted(p.name for p in out_parent.iterdir())
    assert leftovers == ["cli", "cli.jsonl", "py", "py.jsonl"]


def test_apply_on_the_gpu_matches_the_cli(pair, out_parent):
    """On the default adapter (lavapipe in CI); fails, naming the package, without one."""
    if not clp_gpu.devices():
        pytest.fail("no GPU adapter: install mesa-vulkan-drivers (the lavapipe software driver)")
    source, helper = pair
    report = clp_gpu.apply(source, helper, out_parent / "py", top_k=10, backend="gpu",
                           progress=False)
    assert report["backend"] == "gpu" and report["adapter"]
    run_cli("apply", "--source", str(source), "--helper", str(helper), "--out",
            str(out_parent / "cli"), "--top-k", "10", "--backend", "gpu", "--quiet")
    assert model_files(out_parent / "py") == model_files(out_parent / "cli")


def test_paths_may_be_pathlike_or_str_and_defaults_are_the_clis(pair, out_parent):
    source, helper = pair
    os.chdir(out_parent)
    report = clp_gpu.apply(str(source), Path(helper), "rel", backend="cpu", progress=False)
    assert Path("rel/model.safetensors").is_file()
    cli_out = out_parent / "cli"
    run_cli("apply", "--source", str(source), "--helper", str(helper), "--out", str(cli_out),
            "--backend", "cpu", "--quiet")
    cli_report = json.loads((cli_out / "clp_transfer.json").read_text())
    assert report["method"] == cli_report["method"]
    assert model_files(out_parent / "rel") == model_files(cli_out)


def test_force_replaces_and_progress_reaches_a_callback(pair, out_parent):
    source, helper = pair
    out = out_parent / "model"
    clp_gpu.apply(source, helper, out, backend="cpu", progress=False)
    seen = []
    report = clp_gpu.apply(source, helper, out, backend="cpu", force=True, progress=seen.append)
    assert report["counts"]["computed"] == 40
    assert all(isinstance(p, clp_gpu.Progress) for p in seen)
    tasks = {p.task for p in seen}
    assert "copying tensors" in tasks, tasks
    rows = [p for p in seen if p.task.startswith("computing rows on CPU")]
    assert rows[0].done == 0 and rows[-1].finished and rows[-1].done == rows[-1].total == 40
    assert [p for p in seen if p.unit == "bytes"][-1].finished


class FakeBar:
    """A tqdm-compatible bar that records what it was told."""

    made = []

    def __init__(self, **options):
        self.options, self.n, self.closed = options, 0, False
        FakeBar.made.append(self)

    def update(self, n):
        self.n += n

    def close(self):
        self.closed = True


def test_progress_with_a_tqdm_compatible_class(pair, out_parent):
    source, helper = pair
    FakeBar.made = []
    clp_gpu.apply(source, helper, out_parent / "m", backend="cpu", progress=FakeBar)
    bars = {b.options["desc"]: b for b in FakeBar.made}
    assert bars["copying tensors"].options["unit"] == "B" and bars["copying tensors"].closed
    rows = next(b for d, b in bars.items() if d.startswith("computing rows"))
    assert rows.options["total"] == rows.n == 40 and rows.closed


def test_progress_true_prints_lines_without_tqdm(pair, out_parent, monkeypatch, capsys):
    from clp_gpu import _progress

    monkeypatch.setattr(_progress, "_tqdm", lambda: None)
    monkeypatch.setattr(_progress._Lines, "EVERY_S", 0.0)
    source, helper = pair
    clp_gpu.apply(source, helper, out_parent / "m", backend="cpu")
    lines = capsys.readouterr().err.splitlines()
    assert any(line.startswith("copying tensors: ") and line.endswith(" s") for line in lines), lines
    assert any(line.startswith("computing rows on CPU") and "40 rows" in line for line in lines), lines
    assert capsys.readouterr().out == ""
