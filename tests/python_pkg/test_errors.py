"""Errors: one exception class with the CLI's one-line message, nothing left at OUT; Python's
own argument errors stay TypeErrors."""

import os
import subprocess
import sys
import textwrap

import pytest

import clp_gpu


def test_a_missing_source_raises_clperror_with_the_clis_message(pair, out_parent):
    _, helper = pair
    missing = out_parent / "no-such-model"
    with pytest.raises(clp_gpu.ClpError) as e:
        clp_gpu.apply(missing, helper, out_parent / "out", backend="cpu", progress=False)
    message = str(e.value)
    assert str(missing) in message and "\n" not in message, message
    assert list(out_parent.iterdir()) == []
    cli = subprocess.run([sys.executable, "-m", "clp_gpu", "apply", "--source", str(missing),
                          "--helper", str(helper), "--out", str(out_parent / "out"),
                          "--backend", "cpu"], capture_output=True, text=True)
    assert cli.returncode == 1
    assert cli.stderr.strip() == f"error: {message}"


def test_an_existing_out_is_refused_and_kept(pair, out_parent):
    source, helper = pair
    out = out_parent / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(clp_gpu.ClpError, match="already exists; pass --force"):
        clp_gpu.apply(source, helper, out, backend="cpu", progress=False)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in out_parent.iterdir()) == ["out"]


def test_a_bad_value_is_the_clis_usage_error_on_one_line(pair, out_parent):
    source, helper = pair
    with pytest.raises(clp_gpu.ClpError) as e:
        clp_gpu.apply(source, helper, out_parent / "out", top_k="many", progress=False)
    assert "--top-k" in str(e.value) and "many" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(clp_gpu.ClpError, match="backend"):
        clp_gpu.apply(source, helper, out_parent / "out", backend="tpu", progress=False)
    assert list(out_parent.iterdir()) == []


def test_python_argument_errors_are_type_errors(pair, out_parent):
    source, helper = pair
    with pytest.raises(TypeError, match="no_such_flag"):
        clp_gpu.apply(source, helper, out_parent / "o", no_such_flag=1)
    with pytest.raises(TypeError):
        clp_gpu.apply(source, helper)
    with pytest.raises(TypeError, match="force"):
        clp_gpu.apply(source, helper, out_parent / "o", force="yes")
    with pytest.raises(TypeError, match="progress"):
        clp_gpu.apply(source, helper, out_parent / "o", backend="cpu", progress=3)
    assert list(out_parent.iterdir()) == []


def test_gpu_without_a_vulkan_loader_names_the_package_and_cpu_and_auto_still_work(pair, tmp_path):
    """A process whose libvulkan.so.1 cannot be loaded (a broken one first on LD_LIBRARY_PATH)."""
    source, helper = pair
    fake = tmp_path / "lib"
    fake.mkdir()
    (fake / "libvulkan.so.1").write_text("not a library")
    script = textwrap.dedent(f"""
        import clp_gpu
        assert clp_gpu.devices() == [], clp_gpu.devices()
        try:
            clp_gpu.apply({str(source)!r}, {str(helper)!r}, {str(tmp_path / "gpu")!r},
                          backend="gpu", progress=False)
        except clp_gpu.ClpError as e:
            print("ClpError:", e)
        report = clp_gpu.apply({str(source)!r}, {str(helper)!r}, {str(tmp_path / "cpu")!r},
                               backend="cpu", progress=False)
        print("cpu:", report["counts"]["computed"])
        report = clp_gpu.apply({str(source)!r}, {str(helper)!r}, {str(tmp_path / "auto")!r},
                               progress=False)
        print("auto:", report["backend"], report["notices"][0])
    """)
    env = {**os.environ, "LD_LIBRARY_PATH": str(fake)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ClpError: no GPU adapter found") and "mesa-vulkan-drivers" in lines[0]
    assert lines[1] == "cpu: 40"
    # The default, `auto`, takes the CPU path and says why.
    assert lines[2].startswith("auto: cpu backend auto: the CPU path") and "no GPU adapter" in lines[2]
    assert not (tmp_path / "gpu").exists()
