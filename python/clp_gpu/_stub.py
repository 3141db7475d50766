"""Writes the type stub ``__init__.pyi`` from the CLI's flags.

    python -m clp_gpu._stub > python/clp_gpu/__init__.pyi

The stub gives editors and type checkers the functions' signatures and docstrings (the
functions themselves are built at import time, see ``_spec.py``). tests/python_pkg checks that
the committed stub is what this prints, so a flag added to the CLI shows up here by running
the command above.
"""

from __future__ import annotations

from typing import Any, Dict, List

from ._spec import COMMANDS, RESULTS, default, docstring, param_name, positional

HEADER = '''\
# The type stub of clp_gpu, generated from the CLI's flags by
#     python -m clp_gpu._stub > python/clp_gpu/__init__.pyi
# (tests/python_pkg fails when it is out of date). Do not edit by hand.

import os
from typing import Any, Callable, Literal, NamedTuple, Sequence, Union

StrPath = Union[str, "os.PathLike[str]"]
ProgressArg = Union[bool, Callable[["Progress"], object], type]

__version__: str

class ClpError(Exception):
    """A clp-gpu command failed; the message is the one line the CLI prints after `error:`."""

class Progress(NamedTuple):
    """One progress update, as a `progress=` callback receives it."""

    task: str
    done: int
    total: int | None
    unit: str
    finished: bool

def main(argv: list[str] | None = None) -> int:
    """The `clp-gpu` command line: runs `argv` (default: `sys.argv[1:]`) and returns the exit code."""

from . import distill as distill  # BiStil's distillation, callable: clp_gpu.distill(**flags)

def distill_task(**kwargs: Any) -> dict[str, Any]:
    """BiStil phase 2 (`clp-gpu distill-task`); needs the `[distill]` extra."""

def apply_sparse_diff(student: StrPath, diff: StrPath, out: StrPath) -> dict[str, Any]:
    """Applies a `distill-task` sparse difference to its phase-1 student; writes `out`."""
'''

_ANNOTATIONS = {
    "bool": "bool",
    "int": "int",
    "float": "float",
    "path": "StrPath",
    "size": "int | str",
    "top_k": 'int | Literal["all"]',
    "str": "str",
}


def annotation(arg: Dict[str, Any]) -> str:
    """The type of a flag's keyword argument."""
    if arg["choices"]:
        one = "Literal[" + ", ".join(f'"{c}"' for c in arg["choices"]) + "]"
    else:
        one = _ANNOTATIONS[arg["type"]]
    text = f"{one} | Sequence[{one}]" if arg["multiple"] else one
    if not arg["required"] and arg["type"] != "bool" and default(arg) is None:
        text += " | None"
    return text


def _default_text(arg: Dict[str, Any]) -> str:
    value = default(arg)
    if isinstance(value, tuple):
        return "..."
    return repr(value).replace("'", '"')


def function(name: str) -> str:
    """The stub of one function, with its docstring."""
    cmd = COMMANDS[name]
    required = [a for a in cmd["args"] if positional(cmd, a)]
    optional = [a for a in cmd["args"] if not positional(cmd, a)]
    params: List[str] = [f"{param_name(a)}: {annotation(a)}" for a in required]
    keywords = [f"{param_name(a)}: {annotation(a)} = {_default_text(a)}" for a in optional]
    if cmd["progress"]:
        keywords.append("progress: ProgressArg = True")
    if keywords:
        params += ["*"] + keywords
    text = docstring(cmd).replace("\\", "\\\\").replace('"""', '\\"""')
    doc = "\n".join(("    " + line).rstrip() for line in text.splitlines())
    lines = [f"def {name}("] + [f"    {p}," for p in params] + [f") -> {RESULTS[name][0]}:"]
    if not params:
        lines = [f"def {name}() -> {RESULTS[name][0]}:"]
    return "\n".join(lines) + '\n    """' + doc.lstrip() + '\n    """\n'


def render() -> str:
    """The whole stub."""
    return HEADER + "".join("\n" + function(name) for name in COMMANDS)


if __name__ == "__main__":
    print(render(), end="")
