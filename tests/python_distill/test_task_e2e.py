"""distill-task end to end on the CPU, on the synthetic bilingual world of test_task_world.py:
a task teacher trained on language S; the phase-1 student distilled and sparsely fine-tuned on
a small, noisily labelled S training set; evaluated on held-out S and on the same sentences
translated into T. Also: the diff gives the student back bit for bit, --train-teacher and token
classification, and bad input (one line, exit 1, nothing written)."""

import json
from pathlib import Path

import pytest
import torch

import test_task_world as world
from clp_gpu.distill.task import TaskError, apply_sparse_diff, distill_task, main
from clp_gpu.distill.task.sparse import IDX


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("task_world")
    base, phase1, (s, t, _) = world.build_models(root)
    world.write_task(root / "teacher_train.jsonl", s, 1500, 1)
    teacher = world.train_task_teacher(root, base, root / "teacher_train.jsonl", steps=150)
    world.write_task(root / "train.jsonl", s, 240, 2, noise=0.3)
    world.write_task(root / "eval_S.jsonl", s, 300, 3)
    world.write_task(root / "eval_T.jsonl", t, 300, 3)
    common = dict(student=phase1, train=root / "train.jsonl",
                  eval=[root / "eval_S.jsonl", root / "eval_T.jsonl"], lr=3e-3, batch_size=16,
                  full_epochs=10, sparse_epochs=10, quiet=True, seed=0)
    distilled = distill_task(task_teacher=teacher, out=root / "distilled", **common)
    alone = distill_task(out=root / "alone", hidden_weight=0, attention_weight=0, logit_weight=0,
                         label_weight=1, **common)
    return dict(root=root, base=base, phase1=phase1, teacher=teacher, s=s, t=t,
                distilled=distilled, alone=alone)


def test_sparse_student_beats_a_student_without_teacher_on_the_target_language(w):
    d, a = w["distilled"]["eval"], w["alone"]["eval"]
    assert d["eval_T"]["teacher"]["accuracy"] > 0.85  # the teacher is multilingual
    sparse_t = d["eval_T"]["sparse_student"]["accuracy"]
    no_teacher = max(a["eval_T"]["dense_student"]["accuracy"], a["eval_T"]["sparse_student"]["accuracy"])
    assert sparse_t > no_teacher + 0.1, (sparse_t, no_teacher)
    assert sparse_t > 0.5  # four topics: chance is 0.25
    # the report's figure is the saved student's, scored independently here
    assert world.accuracy(w["root"] / "distilled" / "student", w["root"] / "eval_T.jsonl") == \
        pytest.approx(sparse_t)


def test_report_contents(w):
    r = json.loads((w["root"] / "distilled" / "distill_task_report.json").read_text())
    assert r["task"] == "sequence" and r["labels"] == world.TOPICS
    assert r["layer_map"]["kept"] == [1, 3]
    assert r["student"]["head_tensors"] == ["classifier.bias", "classifier.weight"]
    assert r["student"]["parameters"] < r["teacher"]["parameters"]
    assert r["student"]["forward_ms_per_example"] > 0 and r["teacher"]["forward_ms_per_example"] > 0
    assert r["sparse"]["kept_entries"] == int(0.08 * r["student"]["body_parameters"])
    assert r["sparse"]["diff_bytes"] == (w["root"] / "distilled" / "sparse_diff.safetensors").stat().st_size
    assert r["phases"]["full"]["steps"] == 150 and r["phases"]["sparse"]["steps"] == 150
    assert r["phases"]["full"]["loss_terms"] == ["step", "loss", "attention_mse", "hidden_mse", "soft_ce"]
    first, last = r["phases"]["full"]["loss_curve"][0], r["phases"]["full"]["loss_curve"][-1]
    assert last[2] < first[2] and last[3] < first[3]  # attention and hidden MSE fall
    assert not list(w["root"].glob(".distilled.staging-*"))


def _tensors(d):
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def test_diff_gives_the_sparse_student_back_exactly(w, tmp_path, capsys):
    out = w["root"] / "distilled"
    rebuilt = tmp_path / "rebuilt"
    apply_sparse_diff(w["phase1"], out / "sparse_diff.safetensors", rebuilt)
    a, b = _tensors(out / "student"), _tensors(rebuilt)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k].view(-1).view(torch.uint8),
                                                        b[k].view(-1).view(torch.uint8)), k
    # the student differs from the phase-1 student only at the diff's indices (body tensors)
    from safetensors import safe_open

    with safe_open(str(out / "sparse_diff.safetensors"), "pt") as f:
        diff = {k: f.get_tensor(k) for k in f.keys()}
    k_total = sum(v.numel() for key, v in diff.items() if key.endswith(IDX))
    assert k_total == w["distilled"]["sparse"]["kept_entries"]
    base = {"bert." + k: v for k, v in _tensors(w["phase1"]).items()}
    moved_outside = 0
    for key, idx in diff.items():
        if not key.endswith(IDX):
            continue
        name = key[: -len(IDX)]
        outside = torch.ones(a[name].numel(), dtype=torch.bool)
        outside[idx.long()] = False
        moved_outside += int((a[name].view(-1)[outside] != base[name].view(-1)[outside]).sum())
    assert moved_outside == 0
    # main --apply-diff does the same; a second time the output exists: refused
    capsys.readouterr()
    assert main(["--apply-diff", str(out / "sparse_diff.safetensors"), "--student",
                 str(w["phase1"]), "--out", str(tmp_path / "again"), "--quiet", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kept_entries"] == k_total and printed["labels"] == world.TOPICS
    assert all(torch.equal(a[k], v) for k, v in _tensors(tmp_path / "again").items())
    with pytest.raises(TaskError, match="exists"):
        apply_sparse_diff(w["phase1"], out / "sparse_diff.safetensors", rebuilt)


def test_diff_refuses_another_student(w, tmp_path):
    with pytest.raises(TaskError, match="another phase-1 student"):
        apply_sparse_diff(w["base"], w["root"] / "distilled" / "sparse_diff.safetensors", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_train_teacher_and_token_classification(w, tmp_path):
    world.write_task(tmp_path / "ner_S.jsonl", w["s"], 160, 5, kind="token")
    world.write_task(tmp_path / "ner_T.jsonl", w["t"], 60, 6, kind="token")
    out = tmp_path / "ner"
    r = distill_task(student=w["phase1"], teacher=w["base"], train_teacher=True,
                     train=tmp_path / "ner_S.jsonl", eval=[tmp_path / "ner_T.jsonl"], out=out,
                     lr=3e-3, batch_size=16, teacher_epochs=4, full_epochs=2, sparse_epochs=2,
                     density=0.2, quiet=True)
    assert r["task"] == "token" and "O" in r["labels"] and "B-food" in r["labels"]
    e = r["eval"]["ner_T"]
    assert e["teacher"]["f1_kind"] == "entity span F1"
    assert e["teacher"]["accuracy"] > 0.6  # tags learnt by the fine-tuned teacher
    assert r["teacher"]["fine_tuned_here"] and (out / "teacher" / "config.json").is_file()
    cfg = json.loads((out / "teacher" / "config.json").read_text())
    assert cfg["architectures"] == ["BertForTokenClassification"]
    rebuilt = tmp_path / "rebuilt"
    apply_sparse_diff(w["phase1"], out / "sparse_diff.safetensors", rebuilt)
    a, b = _tensors(out / "student"), _tensors(rebuilt)
    assert all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def test_same_inputs_same_bytes(w, tmp_path):
    import hashlib

    digests = []
    for name in ("a", "b"):
        distill_task(student=w["phase1"], task_teacher=w["teacher"], train=w["root"] / "train.jsonl",
                     out=tmp_path / name, full_steps=4, sparse_steps=4, lr=3e-3, quiet=True)
        digests.append([hashlib.sha256((tmp_path / name / f).read_bytes()).hexdigest()
                        for f in ("student/model.safetensors", "sparse_diff.safetensors")])
    assert digests[0] == digests[1]


def test_not_a_diff(w, tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(TaskError, match="not a distill-task sparse diff"):
        apply_sparse_diff(w["phase1"], tmp_path / "plain.safetensors", tmp_path / "o")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(TaskError, match="not a readable safetensors file"):
        apply_sparse_diff(w["phase1"], tmp_path / "junk.safetensors", tmp_path / "o")


def test_two_processes_match_one(w, tmp_path):
    """torchrun (gloo, CPU) with 2 processes × batch 4 = one process × batch 8."""
    import os
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    runner = tmp_path / "run_task.py"
    runner.write_text(f"import sys\nsys.path.insert(0, {str(here)!r})\nimport conftest  # noqa\n"
                      "from clp_gpu.distill.task import main\nraise SystemExit(main())\n")
    args = ["--student", str(w["phase1"]), "--task-teacher", str(w["teacher"]), "--train",
            str(w["root"] / "train.jsonl"), "--full-steps", "4", "--sparse-steps", "4", "--lr",
            "3e-3", "--quiet", "--density", "0.2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(runner), *args, "--batch-size", "8", "--out",
                        str(tmp_path / "one")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", "29533", str(runner), *args, "--batch-size", "4", "--out",
                        str(tmp_path / "two")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (json.loads((tmp_path / d / "distill_task_report.json").read_text()) for d in ("one", "two"))
    for phase in ("full", "sparse"):
        assert a["phases"][phase]["tokens"] == b["phases"][phase]["tokens"]
        for x, y in zip(a["phases"][phase]["loss_curve"], b["phases"][phase]["loss_curve"]):
            assert x[1] == pytest.approx(y[1], rel=1e-2), (phase, x, y)
    assert a["sparse"]["kept_entries"] == b["sparse"]["kept_entries"]
    ta, tb = _tensors(tmp_path / "one" / "student"), _tensors(tmp_path / "two" / "student")
    # the same up to float sums, except where a near-tie put an entry in one mask and not the other
    off = sum(int(((ta[k] - tb[k]).abs() > 2e-3).sum()) for k in ta)
    assert off <= 0.01 * sum(t.numel() for t in ta.values()), off
    assert not list(tmp_path.glob(".two.staging-*"))


def _bad_cases(w, tmp):
    s = w["s"]
    ok_train = w["root"] / "train.jsonl"
    (tmp / "nolabel.jsonl").write_text('{"text": "a"}\n')
    (tmp / "unseen.jsonl").write_text('{"text": "%s", "label": "zoo"}\n' % s[0])
    (tmp / "tags.jsonl").write_text('{"tokens": ["%s", "%s"], "tags": ["O"]}\n' % (s[0], s[1]))
    world.write_task(tmp / "ner.jsonl", s, 20, 9, kind="token")
    return [
        (["--train", str(tmp / "nolabel.jsonl")], 'no "label"'),
        (["--train", str(ok_train), "--eval", str(tmp / "unseen.jsonl")], "label 'zoo' is not in the training labels"),
        (["--train", str(tmp / "tags.jsonl")], "2 tokens but 1 tags"),
        (["--train", str(tmp / "ner.jsonl")], "not a *ForTokenClassification model"),
        (["--train", str(ok_train), "--density", "0"], "--density 0.0 is outside (0, 1]"),
        (["--train", str(ok_train), "--density", "1.5"], "--density 1.5 is outside (0, 1]"),
        (["--train", str(ok_train), "--max-seq-len", "200"], "beyond the 40 positions"),
    ]


def test_bad_input_one_line_nothing_written(w, tmp_path, capsys):
    for extra, message in _bad_cases(w, tmp_path):
        out = tmp_path / "out"
        rc = main(["--student", str(w["phase1"]), "--task-teacher", str(w["teacher"]),
                   "--out", str(out), "--quiet", *extra])
        err = capsys.readouterr().err
        assert rc == 1, (extra, err)
        assert message in err, (extra, err)
        assert err.count("\n") == 1 and err.startswith("error: ")
        assert not out.exists() and not list(tmp_path.glob(".out.staging-*"))


def test_student_of_another_family_refused(w, tmp_path):
    from transformers import RobertaConfig, RobertaModel

    other = tmp_path / "roberta"
    RobertaModel(RobertaConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=32)).save_pretrained(other)
    with pytest.raises(TaskError, match="is a `roberta` model but the teacher .* is `bert`"):
        distill_task(student=other, task_teacher=w["teacher"], train=w["root"] / "train.jsonl",
                     out=tmp_path / "o", quiet=True)
    assert not (tmp_path / "o").exists()


def test_narrower_student_learns_through_a_fixed_projection(w, tmp_path):
    """A student of width 16 under the width-32 teacher: teacher states are projected (SVD of
    sampled states, not learnt) and the uniform layer map applies (no shrink record)."""
    from transformers import AutoTokenizer, BertModel

    narrow = tmp_path / "narrow"
    tok = AutoTokenizer.from_pretrained(w["phase1"])
    torch.manual_seed(0)
    BertModel(world.bert_config(len(tok), 2, width=16, heads=4)).save_pretrained(narrow)
    tok.save_pretrained(narrow)
    r = distill_task(student=narrow, task_teacher=w["teacher"], train=w["root"] / "train.jsonl",
                     eval=[w["root"] / "eval_T.jsonl"], out=tmp_path / "o", full_steps=20,
                     sparse_steps=3, lr=3e-3, quiet=True)
    assert r["layer_map"]["kept"] is None and r["layer_map"]["hidden"] == [[0, 0], [1, 2], [2, 4]]
    assert r["student"]["width"] == 16 and r["teacher"]["width"] == 32
    curve = r["phases"]["full"]["loss_curve"]
    hidden = r["phases"]["full"]["loss_terms"].index("hidden_mse")
    assert curve[-1][hidden] < curve[0][hidden]  # the projected targets are learnable


@pytest.mark.parametrize("family", ["xlm-roberta", "deberta-v2", "llama"])
def test_other_families_run_and_round_trip(family, tmp_path):
    """XLM-R (no pooler, a two-layer head), DeBERTa-v2 (pooler outside the base model) and a
    decoder (Llama: the last real token classifies): both tasks run with --train-teacher, and
    the diff gives each student back bit for bit."""
    from transformers import (DebertaV2Config, DebertaV2Model, LlamaConfig, LlamaModel,
                              XLMRobertaConfig, XLMRobertaModel)

    cfg, model = {"xlm-roberta": (XLMRobertaConfig, XLMRobertaModel),
                  "deberta-v2": (DebertaV2Config, DebertaV2Model),
                  "llama": (LlamaConfig, LlamaModel)}[family]
    s, t, _ = world.languages()
    vocab = world.SPECIALS + sorted(set(s) | set(t))
    for name, layers in (("teacher", 4), ("student", 2)):
        d = tmp_path / name
        torch.manual_seed(0)
        model(cfg(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers,
                  num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                  pad_token_id=0, type_vocab_size=1 if family == "xlm-roberta" else 0)).save_pretrained(d)
        world.write_tokenizer(d, vocab)
        tc = json.loads((d / "tokenizer_config.json").read_text())
        tc["model_input_names"] = ["input_ids", "attention_mask"]  # no token types, as theirs
        (d / "tokenizer_config.json").write_text(json.dumps(tc))
    for kind in ("sequence", "token"):
        data = world.write_task(tmp_path / f"{kind}.jsonl", s, 48, 1, kind=kind)
        out = tmp_path / f"out_{kind}"
        r = distill_task(student=tmp_path / "student", teacher=tmp_path / "teacher",
                         train_teacher=True, train=data, eval=[data], out=out, teacher_steps=2,
                         full_steps=2, sparse_steps=2, quiet=True)
        assert r["task"] == kind and r["eval"][kind]["sparse_student"]["accuracy"] >= 0
        apply_sparse_diff(tmp_path / "student", out / "sparse_diff.safetensors", tmp_path / f"re_{kind}")
        a, b = _tensors(out / "student"), _tensors(tmp_path / f"re_{kind}")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
