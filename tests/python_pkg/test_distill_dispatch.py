"""The console command hands `distill` / `distill-task` to the Python package (the [distill]
extra), and says in one line how to get the extra when it is missing."""

import clp_gpu


def test_distill_help_comes_from_python(capsys):
    assert clp_gpu.main(["distill", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: clp-gpu distill") and "--teacher" in out and "--resume" in out


def test_missing_extra_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(clp_gpu.distill, "missing_dependency",
                        lambda: "clp-gpu distill needs torch: pip install 'clp-gpu[distill]'")
    for command in ("distill", "distill-task"):
        assert clp_gpu.main([command, "--teacher", "x"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and "[distill]" in err, err


def test_distill_is_callable_and_a_package():
    assert callable(clp_gpu.distill)
    from clp_gpu.distill import layermap

    assert layermap.layer_map(6, 12).attention[0] == (0, 1)
