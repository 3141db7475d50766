"""The module's surface: functions built from the CLI's flags, their docstrings, the stub."""

import inspect
import json
from pathlib import Path

import clp_gpu
from clp_gpu import _native, _stub


def flags_of(command):
    cmd = next(c for c in json.loads(_native.spec())["commands"] if c["name"] == command)
    return {a["long"]: a for a in cmd["args"]}


def test_every_flag_is_a_keyword_argument_with_the_clis_default():
    sig = inspect.signature(clp_gpu.apply)
    params = sig.parameters
    assert list(params)[:3] == ["source", "helper", "out"]
    for long, flag in flags_of("apply").items():
        name = long.replace("-", "_")
        assert name in params, name
        if not flag["required"] and flag["type"] != "bool" and flag["default"]:
            assert str(params[name].default) == flag["default"][0] or \
                params[name].default == float(flag["default"][0]), name
    assert "json" not in params and "quiet" not in params and params["progress"].default is True
    assert params["top_k"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["force"].default is False
    ev = inspect.signature(clp_gpu.evaluate).parameters
    assert isinstance(ev["top_k"].default, tuple)


def test_every_command_has_a_function_with_a_docstring():
    for name in ["apply", "evaluate", "inspect", "trim", "shrink", "perplexity", "devices"]:
        f = getattr(clp_gpu, name)
        assert f.__name__ == name and f.__module__ == "clp_gpu"
        doc = f.__doc__
        assert f"clp-gpu {name}" in doc and "Returns" in doc and "ClpError" in doc, name
    assert "top_k : int or 'all'" in clp_gpu.apply.__doc__
    assert "Neighbours per missing token" in clp_gpu.apply.__doc__
    assert inspect.signature(clp_gpu.devices).parameters == {}


def test_help_reads_well(capsys):
    help(clp_gpu.apply)
    text = capsys.readouterr().out
    assert "apply(source, helper, out, *, " in text.replace("\n", " ") and "progress=True" in text


def test_the_type_stub_is_current():
    stub = Path(clp_gpu.__file__).with_name("__init__.pyi")
    assert stub.read_text() == _stub.render(), (
        "python/clp_gpu/__init__.pyi is out of date: run "
        "`python -m clp_gpu._stub > python/clp_gpu/__init__.pyi` with the package installed"
    )
    assert Path(clp_gpu.__file__).with_name("py.typed").is_file()
    compile(_stub.render(), "__init__.pyi", "exec")


def test_the_version_is_the_crates():
    assert clp_gpu.__version__ == json.loads(_native.spec())["version"]
    assert issubclass(clp_gpu.ClpError, Exception)
