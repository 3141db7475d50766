"""Decoders: a Llama teacher → trim → shrink --keep-every 2 → distill with every loss term on
(hidden, attention under the causal mask, logit KL, the student's next-token loss). The teacher
is untrained (the trained-teacher test is the encoder's), so only the state agreement, which
the distillation terms pull on, is asserted."""

import json

import torch

import tiny


def test_llama_student_learns_from_its_teacher(tmp_path):
    import clp_gpu.distill

    torch.set_num_threads(1)
    text = tiny.make_corpora(tmp_path / "text", lines=200)
    teacher = tiny.random_llama(tmp_path / "teacher", list(text.values()))
    tiny.engine("trim", "--model", str(teacher), "--corpus", str(text["aa"]), "--corpus",
                str(text["bb"]), "--out", str(tmp_path / "trimmed"))
    tiny.engine("shrink", "--model", str(tmp_path / "trimmed"), "--keep-every", "2", "--out",
                str(tmp_path / "student"))
    out = tmp_path / "out"
    r = clp_gpu.distill(teacher=str(teacher), student=str(tmp_path / "student"),
                        corpus=[str(text["aa"]), str(text["bb"])], out=str(out), seq_len=32,
                        batch_size=8, max_steps=40, lr=3e-3, eval_lines=20, logit_weight=1.0,
                        lm_weight=0.01, progress=False)
    assert r["kind"] == "decoder" and r["family"] == "llama"
    # keep-every 2 of 4 layers keeps 0, 2 and the last, 3
    assert r["layer_map"]["kept"] == [0, 2, 3]
    assert r["layer_map"]["attention"] == [[0, 0], [1, 2], [2, 3]]
    assert r["layer_map"]["hidden"] == [[0, 0], [1, 1], [2, 3], [3, 4]]
    assert set(r["loss_curve"][0]) >= {"hidden_mse", "attention_mse", "logit_kl", "lm"}
    for name in ("aa.txt", "bb.txt"):
        before, after = r["eval"]["before"][name], r["eval"]["after"][name]
        assert after["hidden_mse"]["3->4"] < 0.7 * before["hidden_mse"]["3->4"], (before, after)
        assert after["cosine"] > before["cosine"] + 0.05, (before, after)
        assert "logit_kl" in after
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 3
