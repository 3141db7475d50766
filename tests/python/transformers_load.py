"""Checks that `clp-gpu apply` output loads in Hugging Face transformers.

Builds tiny real models with transformers itself (random weights, tokenizers trained here):
an English byte-level BPE tokenizer for the sources (Llama untied bf16 sharded, GPT-2 tied f32,
BLOOM tied with padded rows) and a German one for a GPT-2 helper; runs the clp-gpu binary; then
loads every output with AutoModelForCausalLM and AutoTokenizer and fails on any missing,
unexpected or mismatched key or loading warning, on non-finite logits, on overlap rows that are
not the source's rows, and on config ids that do not match the target tokenizer.

Then the 38 tiny checkpoints of tests/fixtures/tiny-archs (written by transformers 4.57) are
transferred onto tests/fixtures/helpers/gpt2-500 and each output is loaded with the class its
config names (`architectures[0]`: causal LM, seq2seq, masked LM, image-text-to-text), failing on
missing, unexpected or mismatched keys and on non-finite logits for a short input; a table of
families, what was rebuilt and the result is printed. Pass `--pad-token TOKEN` style arguments
for the families that need a pad token after the script's first argument.

Needs torch and transformers (not installed in CI).
Usage: python tests/python/transformers_load.py target/release/clp-gpu [apply args...]
"""

import io
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (AutoModelForCausalLM, AutoTokenizer, BloomConfig,
                          BloomForCausalLM, GPT2Config, GPT2LMHeadModel,
                          LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast)

EN = ("the quick brown fox jumps over the lazy dog while a small bird sings in the "
      "garden and the children play with a red ball near the old house by the river").split()
DE = ("der schnelle braune fuchs springt über den faulen hund während ein kleiner vogel im "
      "garten singt und die kinder mit einem roten ball nahe dem alten haus am fluss spielen "
      "the garden house").split()


def texts(words, n, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        idx = torch.randint(len(words), (12,), generator=g).tolist()
        out.append(" ".join(words[i] for i in idx))
    return out


def tokenizer(words, seed, vocab_size):
    specials = ["<|endoftext|>"] if seed == 1 else ["<s>", "</s>", "<unk>", "<pad>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts(words, 400, seed), trainer)
    if seed == 1:
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                       eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>")


def save(model, tok, path, dtype, shard=None):
    model = model.to(dtype)
    kwargs = {"safe_serialization": True}
    if shard:
        kwargs["max_shard_size"] = shard
    model.save_pretrained(path, **kwargs)
    tok.save_pretrained(path)


def main():
    binary = Path(sys.argv[1] if len(sys.argv) > 1 else "target/release/clp-gpu").resolve()
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="clp-transformers-"))
    en, de = tokenizer(EN, 1, 400), tokenizer(DE, 2, 360)
    n_en, n_de = len(en), len(de)

    helper = work / "helper-de"
    save(GPT2LMHeadModel(GPT2Config(vocab_size=n_de, n_embd=48, n_layer=2, n_head=4,
                                    bos_token_id=de.bos_token_id, eos_token_id=de.eos_token_id)),
         de, helper, torch.float32)

    sources = {
        "llama-untied-bf16-sharded": (LlamaForCausalLM(LlamaConfig(
            vocab_size=n_en, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
            bos_token_id=en.bos_token_id, eos_token_id=en.eos_token_id)), torch.bfloat16, "60KB"),
        "gpt2-tied-f32": (GPT2LMHeadModel(GPT2Config(
            vocab_size=n_en, n_embd=64, n_layer=2, n_head=4,
            bos_token_id=en.bos_token_id, eos_token_id=en.eos_token_id)), torch.float32, None),
        "bloom-tied-f16-padded": (BloomForCausalLM(BloomConfig(
            vocab_size=n_en + 24, hidden_size=64, n_layer=2, n_head=4,
            bos_token_id=en.bos_token_id, eos_token_id=en.eos_token_id)), torch.float16, None),
    }
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    transformers.logging.set_verbosity_warning()
    transformers.logging.add_handler(handler)
    failures = []
    for name, (model, dtype, shard) in sources.items():
        src = work / name
        save(model, en, src, dtype, shard)
        for top_k in ["all", "8"]:
            out = work / f"out-{name}-{top_k}"
            subprocess.run([str(binary), "apply", "--source", str(src), "--helper", str(helper),
                            "--out", str(out), "--backend", "cpu", "--top-k", top_k, "--quiet"],
                           check=True)
            log.truncate(0)
            log.seek(0)
            tgt, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
            tok = AutoTokenizer.from_pretrained(out)
            problems = [f"{k}: {v}" for k, v in info.items() if v]
            warnings = [l for l in log.getvalue().splitlines()
                        if "not used" in l or "newly initialized" in l or "not initialized" in l]
            problems += warnings
            src_model = AutoModelForCausalLM.from_pretrained(src)
            if tgt.config.vocab_size != len(tok):
                problems.append(f"vocab_size {tgt.config.vocab_size} != tokenizer {len(tok)}")
            for role in ["bos", "eos", "pad"]:
                want = getattr(tok, f"{role}_token_id")
                got = getattr(tgt.config, f"{role}_token_id", None)
                if want is not None and got != want:
                    problems.append(f"config {role}_token_id {got} != tokenizer {want}")
            src_vocab, tgt_vocab = en.get_vocab(), tok.get_vocab()
            e_src = src_model.get_input_embeddings().weight
            e_tgt = tgt.get_input_embeddings().weight
            o_src = src_model.get_output_embeddings().weight
            o_tgt = tgt.get_output_embeddings().weight
            shared = [t for t in tgt_vocab if t in src_vocab]
            for t in shared:
                i, j = tgt_vocab[t], src_vocab[t]
                if not torch.equal(e_tgt[i], e_src[j]) or not torch.equal(o_tgt[i], o_src[j]):
                    problems.append(f"overlap token {t!r}: row differs from the source")
                    break
            ids = tok("der garten und the house", return_tensors="pt")
            with torch.no_grad():
                logits = tgt(**ids).logits
            if not torch.isfinite(logits).all():
                problems.append("non-finite logits")
            gen = tgt.generate(**ids, max_new_tokens=3, do_sample=False,
                               pad_token_id=tok.pad_token_id)
            status = "ok" if not problems else "FAIL: " + "; ".join(problems)
            print(f"{name:28s} top-k {top_k:>3}: {len(shared)} overlap of {len(tok)}, "
                  f"logits {tuple(logits.shape)}, generated {gen.shape[1] - ids['input_ids'].shape[1]} tokens: {status}")
            if problems:
                failures.append(name)
    failures += check_fixtures(binary, work, sys.argv[2:])
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, work dir {work}")
    sys.exit(1 if failures else 0)


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def forward_inputs(model, cfg, ids):
    """A short input for `model`: token ids, decoder ids for encoder-decoders, random mel
    features for Whisper."""
    kw = {"input_ids": ids}
    if cfg.get("model_type") == "whisper":
        frames = 2 * cfg["max_source_positions"]
        kw = {"input_features": torch.randn(1, cfg["num_mel_bins"], frames),
              "decoder_input_ids": ids}
    elif cfg.get("is_encoder_decoder"):
        kw["decoder_input_ids"] = ids
    return kw


def check_fixture(binary, work, name, extra):
    src = FIXTURES / "tiny-archs" / name
    out = work / f"arch-{name}"
    def apply(*more):
        shutil.rmtree(out, ignore_errors=True)
        return subprocess.run([str(binary), "apply", "--source", str(src), "--helper",
                               str(FIXTURES / "helpers" / "gpt2-500"), "--out", str(out),
                               "--backend", "cpu", "--json", *extra, *more],
                              capture_output=True, text=True)
    run = apply()
    if run.returncode != 0 and "--pad-token" in run.stderr:
        # A family that needs a pad token: the helper has none, so add one.
        run = apply("--pad-token", "<pad>")
    if run.returncode != 0:
        return [], [f"apply: {run.stderr.strip()}"]
    rebuilt = json.loads(run.stdout).get("tensors_rebuilt", [])
    cfg = json.loads((out / "config.json").read_text())
    cls = getattr(transformers, cfg["architectures"][0])
    model, info = cls.from_pretrained(out, output_loading_info=True)
    problems = [f"{k}: {v}" for k, v in info.items() if v]
    tok = AutoTokenizer.from_pretrained(out)
    text_cfg = cfg.get("text_config", cfg)
    for role in ["bos", "eos", "pad"]:
        want = getattr(tok, f"{role}_token_id")
        got = text_cfg.get(f"{role}_token_id", cfg.get(f"{role}_token_id"))
        if got is not None and want is not None and got != want:
            problems.append(f"{role}_token_id {got} but the tokenizer's is {want}")
    ids = tok("der garten und the house", return_tensors="pt")["input_ids"]
    model.eval()
    with torch.no_grad():
        res = model(**forward_inputs(model, cfg, ids))
    logits = res.logits if hasattr(res, "logits") else res[0]
    if not torch.isfinite(logits).all():
        problems.append("non-finite logits")
    return rebuilt, problems


def check_fixtures(binary, work, extra):
    failures = []
    print(f"\n{'fixture':14s} {'result':6s} rebuilt / problems")
    for d in sorted(p for p in (FIXTURES / "tiny-archs").iterdir() if p.is_dir()):
        try:
            rebuilt, problems = check_fixture(binary, work, d.name, extra)
        except Exception as e:  # a load or forward error is a failure of this family
            rebuilt, problems = [], [f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"]
        status = "ok" if not problems else "FAIL"
        print(f"{d.name:14s} {status:6s} {', '.join(rebuilt)}"
              + ("" if not problems else " | " + "; ".join(problems)))
        if problems:
            failures.append(d.name)
    return failures


if __name__ == "__main__":
    main()
