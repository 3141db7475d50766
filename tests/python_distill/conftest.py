"""The distillation tests (the ``[distill]`` extra: torch, transformers, accelerate).

They import ``clp_gpu.distill`` from the installed package when there is one; from a source
checkout without the built extension, ``clp_gpu`` is registered as a bare namespace over
``python/clp_gpu`` so its pure-Python ``distill`` package imports without ``_native``.
"""

import importlib.util
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

if importlib.util.find_spec("clp_gpu") is None or importlib.util.find_spec("clp_gpu._native") is None:
    pkg = types.ModuleType("clp_gpu")
    pkg.__path__ = [str(REPO / "python" / "clp_gpu")]
    sys.modules["clp_gpu"] = pkg
