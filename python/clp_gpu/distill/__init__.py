"""BiStil's bilingual distillation on PyTorch (the ``[distill]`` extra: torch, transformers,
accelerate): a student made by ``clp-gpu trim`` and ``clp-gpu shrink`` learns the teacher's
hidden states and attention maps (and, optionally, its logits) on text in its languages.

``clp_gpu.distill(teacher=..., student=..., corpus=[...], out=...)`` runs it and returns the
report (``distill_report.json``); ``clp-gpu distill ...`` on the package's console command is
the same. This module is itself callable as that function, and its submodules hold the parts:
:mod:`.layermap`, :mod:`.losses`, :mod:`.vocab`, :mod:`.projection`, :mod:`.data`,
:mod:`.train`. Importing this module needs nothing beyond the standard library; torch is
imported when a run starts.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Dict, List, Optional

#: What to install when torch or transformers are missing.
INSTALL_HINT = "pip install 'clp-gpu[distill]' (torch, transformers, accelerate)"


def missing_dependency() -> Optional[str]:
    """None when the extra's packages import, else a one-line message naming the missing one."""
    for name in ("torch", "transformers", "accelerate"):
        try:
            __import__(name)
        except ImportError:
            return f"clp-gpu distill needs {name}: {INSTALL_HINT}"
    return None


def run(**kwargs: Any) -> Dict[str, Any]:
    """Runs a distillation; keyword arguments are the flags of ``clp-gpu distill`` (``seq_len``
    is ``--seq-len``); returns the report that ``OUT/distill_report.json`` holds. Raises
    :class:`clp_gpu.distill.train.DistillError` (one-line message) on bad input."""
    from .train import distill as _distill

    return _distill(**kwargs)


def main(argv: Optional[List[str]] = None) -> int:
    """``clp-gpu distill ARGS``: returns the exit code (0 done, 1 error, 2 usage, 130 Ctrl-C)."""
    problem = missing_dependency()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    from .cli import main as _main

    return _main(argv)


class _CallableModule(types.ModuleType):
    """Lets ``clp_gpu.distill(...)`` run a distillation although ``clp_gpu.distill`` is also
    the package holding it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        if args:
            raise TypeError("clp_gpu.distill takes keyword arguments only (the flags' names)")
        return run(**kwargs)


sys.modules[__name__].__class__ = _CallableModule
