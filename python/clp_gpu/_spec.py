"""The functions of clp_gpu, built from the CLI's own flags.

``_native.spec()`` describes every subcommand the module exposes, read from the engine's clap
definition: each flag's help, default, choices and type. A function's keyword arguments are
those flags (``top_k`` is ``--top-k``); a call turns the arguments it was given into a command
line, which the engine parses with the CLI's parser, so every default and every check is the
CLI's. Arguments left out are not passed, and the CLI's defaults apply. The signatures and
docstrings that ``help()`` shows, and the type stub (``_stub.py``), are made from the same
description.
"""

from __future__ import annotations

import inspect
import json
import keyword
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from . import _native, _progress

SPEC: Dict[str, Any] = json.loads(_native.spec())

#: The exposed subcommands by name, in the CLI's order.
COMMANDS: Dict[str, Dict[str, Any]] = {c["name"]: c for c in SPEC["commands"]}


def _apply_result(report: Dict[str, Any]) -> Dict[str, Any]:
    with open(Path(report["out"]) / "clp_transfer.json", encoding="utf-8") as f:
        return json.load(f)


#: Per command: the return annotation, what it says, and how the CLI's `--json` report
#: becomes the return value.
RESULTS: Dict[str, Tuple[str, str, Callable[[Any], Any]]] = {
    "apply": (
        "dict[str, Any]",
        "The report that OUT/clp_transfer.json holds: arguments, adapter, inputs, counts, "
        "special-token mapping, fallback rows, notices and timings.",
        _apply_result,
    ),
    "evaluate": (
        "list[dict[str, Any]]",
        "One dict per method, baselines included, best first (the `scores` of "
        "`clp-gpu evaluate --json`): rank, method, relative L2 error, norm ratio, "
        "cosine mean and quantiles, rejected rows, seconds.",
        lambda r: r["scores"],
    ),
    "inspect": (
        "dict[str, Any]",
        "The report `clp-gpu inspect --json` prints: counts and examples of exact, "
        "canonical-only, special-by-role and missing target tokens.",
        lambda r: r,
    ),
    "extend": (
        "dict[str, Any]",
        "The report that OUT/extend_report.json holds: the tokens added with their pieces, "
        "tokens per byte before and after per corpus, how the rows were built, timings.",
        lambda r: r,
    ),
    "trim": ("dict[str, Any]", "The report that OUT/trim_report.json holds.", lambda r: r),
    "shrink": ("dict[str, Any]", "The report that OUT/shrink_report.json holds.", lambda r: r),
    "perplexity": (
        "dict[str, Any]",
        "The documents and bytes scored and, under `models`, each model's bits/byte, "
        "nats/token, perplexity and tokens/byte.",
        lambda r: r,
    ),
    "devices": (
        "list[dict[str, Any]]",
        "One dict per adapter wgpu can use, with the limits that matter to clp-gpu "
        "(empty without a GPU driver).",
        lambda r: r,
    ),
}

PROGRESS_DOC = (
    "True (the default): tqdm bars when tqdm is installed (notebook widgets in Jupyter), "
    "else progress lines on sys.stderr; notices are printed on sys.stderr too. False: "
    "nothing. A callable: called with a clp_gpu.Progress on every update (on the worker "
    "thread; an exception it raises stops the run and is raised by the call). A "
    "tqdm-compatible class: one bar of it per task."
)


#: Optional flags that are positional all the same, in the CLI's order with the required ones:
#: `apply(source, helper, out)` reads as the CLI's main form; `helper` may be None (with
#: `weighting="fvt"` and `helper_tokenizer`, which need no helper model).
OPTIONAL_POSITIONAL = {("apply", "helper")}


def positional(cmd: Dict[str, Any], arg: Dict[str, Any]) -> bool:
    """Whether `arg` is a positional-or-keyword parameter (given every time, maybe as None)."""
    return arg["required"] or (cmd["name"], arg["long"]) in OPTIONAL_POSITIONAL


def param_name(arg: Dict[str, Any]) -> str:
    """The keyword argument of a flag: `--top-k` is `top_k`."""
    name = arg["long"].replace("-", "_")
    return name + "_" if keyword.iskeyword(name) else name


def _scalar(text: str, kind: str) -> Any:
    if kind == "float":
        return float(text)
    if kind in ("int", "top_k", "size") and text.isdigit():
        return int(text)
    return text


def default(arg: Dict[str, Any]) -> Any:
    """The CLI's default of a flag as a Python value (None: the flag is off or absent)."""
    if arg["type"] == "bool":
        return False
    values: List[str] = arg["default"]
    if not values:
        return None
    if arg["delimiter"]:
        values = [v for text in values for v in text.split(arg["delimiter"])]
    converted = [_scalar(v, arg["type"]) for v in values]
    return tuple(converted) if arg["multiple"] else converted[0]


def signature(cmd: Dict[str, Any]) -> inspect.Signature:
    """Required flags first (positional or keyword), then the rest, keyword only."""
    kinds = inspect.Parameter
    params = [
        kinds(param_name(a), kinds.POSITIONAL_OR_KEYWORD) for a in cmd["args"] if positional(cmd, a)
    ]
    params += [
        kinds(param_name(a), kinds.KEYWORD_ONLY, default=default(a))
        for a in cmd["args"]
        if not positional(cmd, a)
    ]
    if cmd["progress"]:
        params.append(kinds("progress", kinds.KEYWORD_ONLY, default=True))
    return inspect.Signature(params)


_TYPE_WORDS = {
    "bool": "bool",
    "int": "int",
    "float": "float",
    "path": "str or os.PathLike",
    "size": "int or str (bytes, e.g. '512MiB')",
    "top_k": "int or 'all'",
    "str": "str",
}


def _type_words(arg: Dict[str, Any]) -> str:
    words = _TYPE_WORDS[arg["type"]]
    if arg["choices"]:
        words = "{" + ", ".join(repr(c) for c in arg["choices"]) + "}"
    if arg["multiple"]:
        words += ", or a list of them"
    return words


def _sentence(text: str) -> str:
    """clap drops the final period of a one-paragraph help; a docstring keeps it."""
    text = text.strip()
    return text if not text or text[-1] in ".!?:" else text + "."


def _block(text: str, indent: str = "") -> List[str]:
    lines: List[str] = []
    for para in _sentence(text).split("\n\n"):
        if lines:
            lines.append("")
        flat = " ".join(line.strip() for line in para.splitlines())
        lines += textwrap.wrap(flat, width=92 - len(indent), initial_indent=indent,
                               subsequent_indent=indent, break_on_hyphens=False) or [""]
    return lines


def docstring(cmd: Dict[str, Any]) -> str:
    """The docstring of a command's function (numpydoc sections), from the CLI's help."""
    name = cmd["name"]
    about = cmd["about"] or name
    lines = _block(about)
    long_about = cmd["long_about"] or ""
    if long_about.strip() and long_about.strip() != about.strip():
        rest = long_about.strip()
        if rest.startswith(about.strip()):
            rest = rest[len(about.strip()):]
        if rest.strip():
            lines += [""] + _block(rest)
    lines += [""] + _block(f"The same as ``clp-gpu {name}``: each keyword argument is the flag "
                           "of the same name (``top_k`` is ``--top-k``), with the same default "
                           "and checks.")
    params = sorted(cmd["args"], key=lambda a: not positional(cmd, a))  # as in the signature
    if params or cmd["progress"]:
        lines += ["", "Parameters", "----------"]
    for a in params:
        head = f"{param_name(a)} : {_type_words(a)}"
        d = default(a)
        if not a["required"] and a["type"] != "bool" and d is not None:
            head += f", default {d!r}"
        lines.append(head)
        lines += _block(a["help"] or "", "    ")
    if cmd["progress"]:
        lines.append("progress : bool, callable or tqdm-compatible class, default True")
        lines += _block(PROGRESS_DOC, "    ")
    returns, said, _ = RESULTS[name]
    lines += ["", "Returns", "-------", returns] + _block(said, "    ")
    lines += ["", "Raises", "------", "ClpError"]
    lines += _block("The command failed; the message is the CLI's one-line error. A failed "
                    "run leaves nothing at its output path.", "    ")
    lines.append("KeyboardInterrupt")
    lines += _block("Ctrl-C stopped the run (the engine stops between tiles and removes its "
                    "temporary output: nothing is left at the output path).", "    ")
    return "\n".join(lines) + "\n"


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        raise TypeError(f"argument {name!r}: expected a value, not {value!r}")
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        return os.fsdecode(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (str, int)):
        return str(value)
    raise TypeError(f"argument {name!r}: expected a str, number or path, not {type(value).__name__}")


def command_line(cmd: Dict[str, Any], given: Dict[str, Any]) -> List[str]:
    """The CLI words for the arguments `given` (by keyword name): only those given."""
    words = ["clp-gpu", cmd["name"]]
    for a in cmd["args"]:
        name = param_name(a)
        if name not in given or given[name] is None:
            continue
        value, flag = given[name], "--" + a["long"]
        if a["type"] == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"argument {name!r}: expected True or False, not {value!r}")
            if value:
                words.append(flag)
            continue
        many = isinstance(value, (list, tuple))
        if many and not a["multiple"]:
            raise TypeError(f"argument {name!r}: takes one value, not a {type(value).__name__}")
        for v in value if many else [value]:
            words.append(f"{flag}={_text(name, v)}")
    return words


def _print_notices(report: Any) -> None:
    if isinstance(report, dict):
        for n in report.get("notices") or []:
            print(f"notice: {n}", file=sys.stderr)


def make(name: str) -> Callable[..., Any]:
    """The function of the subcommand `name`."""
    cmd = COMMANDS[name]
    sig = signature(cmd)
    shape = RESULTS[name][2]

    def function(*args: Any, **kwargs: Any) -> Any:
        given = dict(sig.bind(*args, **kwargs).arguments)
        show = _progress.display(given.pop("progress", True))
        words = command_line(cmd, given)
        try:
            report = json.loads(_native.run(words, show))
        finally:
            if show is not None:
                show.close()
        if show is not None:
            _print_notices(report)
        return shape(report)

    function.__name__ = function.__qualname__ = name
    function.__module__ = "clp_gpu"
    function.__doc__ = docstring(cmd)
    function.__signature__ = sig  # type: ignore[attr-defined]
    return function
