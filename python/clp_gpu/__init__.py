"""clp-gpu: move a language model onto a new tokenizer with CLP-Transfer, on any GPU that wgpu
reaches (Vulkan, Metal, DX12) or on the CPU.

The functions are the CLI's subcommands: ``apply`` (build the target model), ``evaluate``
(score weightings on a held-out share of the overlap), ``inspect`` (how two tokenizers
overlap), ``extend`` (grow a model's own tokenizer and initialise the new rows), ``trim``,
``shrink``, ``perplexity`` and ``devices``; ``distill`` and
``distill_task`` (BiStil's distillation, on PyTorch) come with the ``[distill]`` extra. Each keyword argument is the
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
from typing import Any, Dict, List, Optional

from . import _native
from ._native import ClpError, __version__
from ._progress import Progress
from ._spec import COMMANDS as _COMMANDS
from ._spec import make as _make
from . import distill  # a callable module: clp_gpu.distill(...) (pure Python, torch on demand)

for _name in _COMMANDS:
    globals()[_name] = _make(_name)
del _name

#: Subcommands of the console command that run in Python (the ``[distill]`` extra), not in the
#: engine; the engine's own binary answers them with how to install the extra.
_PYTHON_COMMANDS = ("distill", "distill-task")


def distill_task(**kwargs: Any) -> Dict[str, Any]:
    """BiStil phase 2 (``clp-gpu distill-task``): keyword arguments are its flags; returns the
    report that ``OUT/distill_task_report.json`` holds. Needs the ``[distill]`` extra."""
    from .distill.task import distill_task as _run

    return _run(**kwargs)


def apply_sparse_diff(student: Any, diff: Any, out: Any) -> Dict[str, Any]:
    """Applies a ``distill-task`` sparse difference to the phase-1 student it was trained from
    and writes the task student to ``out``. Needs the ``[distill]`` extra."""
    from .distill.task import apply_sparse_diff as _apply

    return _apply(student, diff, out)


def main(argv: Optional[List[str]] = None) -> int:
    """The ``clp-gpu`` command line: runs ``argv`` (default: ``sys.argv[1:]``) and returns the
    exit code (0 done, 1 error, 2 usage error, 130 interrupted). This is the console command
    ``clp-gpu``; unlike the functions, it prints, and it handles Ctrl-C as the CLI does."""
    args = list(_sys.argv[1:] if argv is None else argv)
    if args and args[0] in _PYTHON_COMMANDS:
        problem = distill.missing_dependency()
        if problem:
            print(f"error: {problem}", file=_sys.stderr)
            return 1
        if args[0] == "distill":
            return distill.main(args[1:])
        from .distill import task

        return task.main(args[1:])
    _sys.stdout.flush()
    _sys.stderr.flush()
    return _native.main(["clp-gpu", *args])


__all__ = ["ClpError", "Progress", "__version__", "main", "distill", "distill_task",
           "apply_sparse_diff", *_COMMANDS]
