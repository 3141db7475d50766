"""Progress of a clp_gpu call, wherever it shows.

The engine reports each task (copying tensors, computing rows, counting corpus lines, scoring
documents) as updates ``(task, done, total, unit, finished)`` on its worker thread. ``display``
turns the ``progress=`` argument into the receiver of those updates: tqdm bars (``tqdm.auto``,
so a notebook gets widgets), plain lines on ``sys.stderr`` when tqdm is not installed, the
caller's own callback, or nothing.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Dict, NamedTuple, Optional


class Progress(NamedTuple):
    """One progress update, as a ``progress=`` callback receives it."""

    #: What is being done, e.g. ``"computing rows on cpu"``.
    task: str
    #: Units done so far.
    done: int
    #: Units in all (None when not known in advance, e.g. lines of a corpus).
    total: Optional[int]
    #: What is counted: ``"rows"``, ``"bytes"``, ``"lines"`` or ``"documents"``.
    unit: str
    #: True on the last update of the task.
    finished: bool


def display(progress: Any) -> Optional["_Display"]:
    """The receiver of updates for ``progress=`` (None: show nothing)."""
    if progress is None or progress is False:
        return None
    if progress is True:
        bar = _tqdm()
        return _Bars(bar) if bar is not None else _Lines()
    if isinstance(progress, type):
        return _Bars(progress)
    if callable(progress):
        return _Calls(progress)
    raise TypeError(
        "progress must be True, False, a callable taking a clp_gpu.Progress, "
        f"or a tqdm-compatible class, not {type(progress).__name__}"
    )


def _tqdm() -> Optional[type]:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class _Display:
    def __call__(self, task: str, done: int, total: Optional[int], unit: str, finished: bool) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Called when the run is over, also when it failed."""


class _Calls(_Display):
    def __init__(self, f: Callable[[Progress], object]) -> None:
        self.f = f

    def __call__(self, task, done, total, unit, finished):
        self.f(Progress(task, done, total, unit, finished))


class _Bars(_Display):
    """One bar of a tqdm-compatible class per task (``bar.update(n)``, ``bar.close()``)."""

    def __init__(self, factory: type) -> None:
        self.factory = factory
        self.bars: Dict[str, Any] = {}
        self.done: Dict[str, int] = {}

    def __call__(self, task, done, total, unit, finished):
        bar = self.bars.get(task)
        if bar is None:
            options: Dict[str, Any] = {"total": total, "desc": task, "leave": False}
            if unit == "bytes":
                options.update(unit="B", unit_scale=True, unit_divisor=1024)
            else:
                options.update(unit=" " + unit)
            bar = self.bars[task] = self.factory(**options)
            self.done[task] = 0
        if done > self.done[task]:
            bar.update(done - self.done[task])
            self.done[task] = done
        if finished:
            bar.close()
            del self.bars[task], self.done[task]

    def close(self):
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
        self.done.clear()


class _Lines(_Display):
    """Plain lines on sys.stderr: a task's state every few seconds, and its end (tasks done
    within those seconds print nothing)."""

    EVERY_S = 2.0

    def __init__(self) -> None:
        self.started: Dict[str, float] = {}
        self.last: Dict[str, float] = {}

    def __call__(self, task, done, total, unit, finished):
        now = time.monotonic()
        if task not in self.started:
            self.started[task] = self.last[task] = now
            return
        if finished:
            seconds = now - self.started.pop(task)
            del self.last[task]
            if seconds >= self.EVERY_S:
                self._say(f"{task}: {_amount(done, unit)} in {seconds:.1f} s")
        elif now - self.last[task] >= self.EVERY_S:
            self.last[task] = now
            of = f" of {_amount(total, unit)}" if total is not None else ""
            self._say(f"{task}: {_amount(done, unit)}{of}")

    @staticmethod
    def _say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)


def _amount(n: int, unit: str) -> str:
    if unit == "bytes":
        return f"{n / 2**20:.1f} MiB"
    return f"{n} {unit}"
