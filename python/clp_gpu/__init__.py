"""clp-gpu: move a language model onto a new tokenizer with CLP-Transfer, on any GPU that wgpu
reaches (Vulkan, Metal, DX12) or on the CPU.

The functions are the CLI's subcommands: ``apply`` (build the target model), ``evaluate``
(score weightings on a held-out share of the overlap), ``inspect`` (how two tokenizers
overlap), ``trim``, ``shrink``, ``perplexity`` and ``devices``. Each keyword argument is the
flag of the same name (``top_k=10`` is ``--top-k 10``), with the CLI's default and checks;
each returns the report as Python data. Paths may be ``str`` or ``os.PathLike``; model ids
(``org/name``) resolve in the local Hugging Face cache, as in the CLI; nothing is downloaded.

Errors raise :class:`ClpError` with the CLI's one-line message. The heavy work runs with the
GIL released; Ctrl-C stops it between tiles and raises ``KeyboardInterrupt``, leaving nothing
at the output path. ``progress=`` chooses how progress shows (see ``help(clp_gpu.apply)``).
``clp-gpu`` on the command line is the same program (:func:`main`).

    >>> import clp_gpu
    >>> report = clp_gpu.apply("bloom-7b1", "gpt2-german", "bloom-german", top_k=10, backend="cpu")
    >>> report["counts"]
"""

import sys as _sys
from typing import List, Optional

from . import _native
from ._native import ClpError, __version__
from ._progress import Progress
from ._spec import COMMANDS as _COMMANDS
from ._spec import make as _make

for _name in _COMMANDS:
    globals()[_name] = _make(_name)
del _name


def main(argv: Optional[List[str]] = None) -> int:
    """The ``clp-gpu`` command line: runs ``argv`` (default: ``sys.argv[1:]``) and returns the
    exit code (0 done, 1 error, 2 usage error, 130 interrupted). This is the console command
    ``clp-gpu``; unlike the functions, it prints, and it handles Ctrl-C as the CLI does."""
    args = list(_sys.argv[1:] if argv is None else argv)
    _sys.stdout.flush()
    _sys.stderr.flush()
    return _native.main(["clp-gpu", *args])


__all__ = ["ClpError", "Progress", "__version__", "main", *_COMMANDS]
