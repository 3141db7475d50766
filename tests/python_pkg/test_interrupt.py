"""Ctrl-C: the call raises KeyboardInterrupt after the engine stopped and removed its staging
directory; nothing is left at OUT, and the next call runs normally."""

import os
import signal
import threading

import pytest

import clp_gpu
from conftest import REPO


def test_an_exception_from_the_progress_callback_stops_apply(pair, out_parent):
    source, helper = pair
    seen = []

    def interrupt(p):
        seen.append(p)
        if p.task.startswith("computing rows"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        clp_gpu.apply(source, helper, out_parent / "out", backend="cpu", progress=interrupt)
    assert list(out_parent.iterdir()) == []
    assert seen[-1].task.startswith("computing rows") and not seen[-1].finished

    with pytest.raises(ZeroDivisionError):
        clp_gpu.apply(source, helper, out_parent / "out", backend="cpu", progress=lambda p: 1 / 0)
    assert list(out_parent.iterdir()) == []
    # The flag is cleared after a cancelled call: the next one runs.
    clp_gpu.apply(source, helper, out_parent / "out", backend="cpu", progress=False)
    assert sorted(p.name for p in out_parent.iterdir()) == ["out"]


@pytest.fixture
def sigint_handler():
    """A SIGINT handler that raises KeyboardInterrupt as Python's does, and says it ran."""
    ran = threading.Event()

    def handler(signum, frame):
        ran.set()
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    yield ran
    signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize("command", ["apply", "trim"])
def test_sigint_raises_keyboardinterrupt_and_leaves_nothing(pair, out_parent, tmp_path, command, sigint_handler):
    """A real SIGINT while the run is provably in progress: the progress callback (on the
    worker thread) sends it, then waits until the main thread's handler has run, so the run
    goes on only after Python raised KeyboardInterrupt and the engine was asked to stop."""
    source, helper = pair

    def send_sigint(p):
        if not sigint_handler.is_set():
            os.kill(os.getpid(), signal.SIGINT)
            assert sigint_handler.wait(30), "the main thread never ran the SIGINT handler"

    out = out_parent / "out"
    with pytest.raises(KeyboardInterrupt):
        if command == "apply":
            clp_gpu.apply(source, helper, out, backend="cpu", progress=send_sigint)
        else:
            corpus = tmp_path / "corpus.txt"
            corpus.write_text("w001 w002 w003\nw004 w005\n" * 50)
            clp_gpu.trim(source, corpus, out, min_freq=0.0, progress=send_sigint)
    assert sigint_handler.is_set()
    assert list(out_parent.iterdir()) == []


def test_the_console_command_is_the_cli(pair, out_parent):
    import subprocess

    done = subprocess.run(["clp-gpu", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("clp-gpu ")
    done = subprocess.run(["clp-gpu", "apply", "--top-k", "x"], capture_output=True, text=True)
    assert done.returncode == 2 and "invalid value 'x' for '--top-k" in done.stderr
    assert REPO.joinpath("pyproject.toml").is_file()
