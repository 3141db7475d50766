"""``clp-gpu distill ARGS`` for subprocess tests (and torchrun): the installed package's entry
when there is one, else the checkout's ``python/`` without the extension (see conftest.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conftest  # noqa: E402,F401  (registers the checkout's clp_gpu when none is installed)

import clp_gpu.distill  # noqa: E402

sys.exit(clp_gpu.distill.main(sys.argv[1:]))
