"""extend: the output loads in transformers with no warning and generates; the Python function
returns the report the CLI writes.

Two small causal LMs are built here with transformers itself (random weights) and tokenizers
trained here: a GPT-2 with a byte-level BPE tokenizer and a Llama with a SentencePiece-style
BPE tokenizer with byte fallback. Each is extended with words of a made-up language.
Needs torch and transformers (the [distill] extra, which CI installs)."""

import io
import json
import logging
import random
import warnings
from pathlib import Path

import pytest

import clp_gpu

torch = pytest.importorskip("torch", reason="needs the [distill] extra (torch, transformers)")
transformers = pytest.importorskip("transformers")
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers  # noqa: E402

ENGLISH = ("the cat sat on the mat and the dog ran to the park while the sun was warm "
           "a man and a woman walked in the city with their children").split()
MADE_UP = ["schnorkelbaum", "baumhaus", "hausmaus", "mausefalle", "fallobst", "obstgarten",
           "gartenzwerg", "zwergenland", "landkarte", "kartenspiel", "spielplatz", "platzregen"]


def sentences(words, n, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 10))) for _ in range(n)]


def byte_level_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(sentences(ENGLISH, 200, 1), trainer)
    return tok, {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}


def sentencepiece_tokenizer():
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", *bytes_],
                                  show_progress=False)
    tok.train_from_iterator(sentences(ENGLISH, 200, 2), trainer)
    # The trainer reserves the byte tokens' ids as special tokens; in a Llama-2 tokenizer they
    # are ordinary vocabulary entries (decoded, never skipped as special).
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if not t["content"].startswith("<0x")]
    return Tokenizer.from_str(json.dumps(data)), {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def build(directory, kind):
    directory = Path(directory)
    directory.mkdir(parents=True)
    tok, specials = byte_level_tokenizer() if kind == "gpt2" else sentencepiece_tokenizer()
    tok.save(str(directory / "tokenizer.json"))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"), **specials)
    fast.save_pretrained(directory)
    vocab = tok.get_vocab_size()
    torch.manual_seed(0)  # the random weights, so every run builds the same model
    ids = {"bos_token_id": tok.token_to_id(specials["bos_token"]),
           "eos_token_id": tok.token_to_id(specials["eos_token"])}
    if kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=16, n_layer=1, n_head=2, n_positions=64, **ids)
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32,
                                          num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                          max_position_embeddings=64, tie_word_embeddings=False, **ids)
        model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def load_quietly(out):
    """The model and tokenizer of `out`; fails on any warning or load-report entry."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model, info = transformers.AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
            tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    finally:
        logger.removeHandler(handler)
    assert not any(info.values()), info
    assert "warn" not in stream.getvalue().lower(), stream.getvalue()
    return model, tokenizer


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_extended_model_loads_and_generates(tmp_path, kind):
    model_dir = build(tmp_path / "model", kind)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(sentences(MADE_UP, 300, 3)) + "\n")
    out = tmp_path / "out"
    report = clp_gpu.extend(model_dir, corpus, 30, out, progress=False)
    assert report == json.loads((out / "extend_report.json").read_text())
    assert 0 < report["added"] <= 30
    model, tokenizer = load_quietly(out)
    before = transformers.AutoTokenizer.from_pretrained(model_dir)
    assert len(tokenizer) == report["tokens_after"] == model.config.vocab_size
    assert all(tokenizer.convert_ids_to_tokens(i) == before.convert_ids_to_tokens(i)
               for i in range(len(before)))
    for t in report["tokens"]:
        assert tokenizer.convert_tokens_to_ids(t["token"]) == t["id"]
    text = "\n".join(sentences(MADE_UP, 5, 9))
    assert len(tokenizer(text)["input_ids"]) < len(before(text)["input_ids"])
    ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :12]
    with torch.no_grad():
        logits = model(ids).logits
        assert torch.isfinite(logits).all()
        # min_new_tokens: a random model may pick EOS at once, which would end generation.
        generated = model.generate(ids, max_new_tokens=5, min_new_tokens=5, do_sample=False,
                                   pad_token_id=tokenizer.eos_token_id)
    assert generated.shape[1] == ids.shape[1] + 5
    decoded = tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True)
    assert decoded == before.decode(before(text)["input_ids"], skip_special_tokens=True)
