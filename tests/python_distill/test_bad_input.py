"""Bad input: one line naming the file or model and the fix, nothing at OUT (nor a work dir)."""

import json

import pytest
import torch

import tiny
from clp_gpu.distill.models import DistillError


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bad")
    text = tiny.make_corpora(root / "text", lines=60)
    tiny.bert_tokenizer(list(text.values()), root / "tok")
    return {
        "root": root, "text": text,
        "teacher": tiny.random_bert(root / "teacher", root / "tok", layers=4),
        "student": tiny.random_bert(root / "student", root / "tok", layers=2),
        "extra_vocab": tiny.random_bert(root / "extra", root / "tok", extra_tokens=["zzqx", "qqzx"]),
        "roberta": tiny.random_bert(root / "roberta", root / "tok", family="roberta"),
        "short": tiny.random_bert(root / "short", root / "tok", positions=16),
    }


def fails(m, tmp_path, match, **changes):
    import clp_gpu.distill

    args = dict(teacher=str(m["teacher"]), student=str(m["student"]),
                corpus=[str(m["text"]["aa"])], out=str(tmp_path / "out"), seq_len=16,
                batch_size=2, max_steps=1, eval_lines=5, progress=False)
    args.update(changes)
    with pytest.raises(DistillError) as e:
        clp_gpu.distill(**args)
    msg = str(e.value)
    assert "\n" not in msg and match in msg, msg
    if changes.get("out") is None:
        assert not (tmp_path / "out").exists()
        assert not (tmp_path / ".out.distill-work").exists()
    return msg


def test_student_vocab_not_within_the_teacher(models, tmp_path):
    msg = fails(models, tmp_path, "not in the vocabulary", student=str(models["extra_vocab"]))
    assert "'zzqx'" in msg and str(models["teacher"]) in msg and "clp-gpu trim" in msg


def test_families_differ(models, tmp_path):
    msg = fails(models, tmp_path, "`roberta`", student=str(models["roberta"]))
    assert str(models["roberta"]) in msg and "`bert`" in msg


def test_missing_and_empty_corpus(models, tmp_path):
    fails(models, tmp_path, "does not exist", corpus=[str(tmp_path / "nope.txt")])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    fails(models, tmp_path, "is empty", corpus=[str(models["text"]["aa"]), str(empty)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"txt": "a"}\n')
    fails(models, tmp_path, "no \"text\"", corpus=[str(bad)])
    fails(models, tmp_path, "--eval-lines", eval_lines=1000)


def test_seq_len_beyond_positions(models, tmp_path):
    msg = fails(models, tmp_path, "positions", student=str(models["short"]), seq_len=32)
    assert str(models["short"]) in msg and "--seq-len 16" in msg


def test_out_exists(models, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    fails(models, tmp_path, "already exists", out=str(tmp_path / "out"))
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_logit_weight_without_heads(models, tmp_path):
    from transformers import AutoModel

    bare = models["root"] / "bare"
    if not bare.exists():
        AutoModel.from_pretrained(models["student"]).save_pretrained(bare)
        cfg = json.loads((bare / "config.json").read_text())
        cfg["architectures"] = ["BertModel"]
        (bare / "config.json").write_text(json.dumps(cfg))
        import shutil

        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (models["student"] / f).exists():
                shutil.copy(models["student"] / f, bare / f)
    fails(models, tmp_path, "--logit-weight", student=str(bare), logit_weight=1.0)


def test_resume_without_a_run(models, tmp_path):
    fails(models, tmp_path, "no interrupted run", resume=True)


def test_console_command_reports_one_line(models, tmp_path, capsys):
    import clp_gpu.distill

    code = clp_gpu.distill.main(["--teacher", str(models["teacher"]), "--student",
                                 str(models["extra_vocab"]), "--corpus", str(models["text"]["aa"]),
                                 "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
