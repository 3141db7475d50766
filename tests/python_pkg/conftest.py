"""Small models built here, in plain Python (safetensors written by hand, WordLevel
tokenizers), so the suite needs nothing but the installed package and pytest."""

import json
import os
import random
import shutil
import struct
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
END = "<|endoftext|>"


def write_safetensors(path, tensors):
    """`tensors`: name -> (shape, values) in f32; header in sorted key order, 8-byte aligned."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_gpt2(directory, words, dim, seed):
    """A one-layer GPT-2 whose vocabulary is END followed by `words` (WordLevel, whitespace)."""
    directory = Path(directory)
    directory.mkdir(parents=True)
    vocab = {END: 0, **{w: i + 1 for i, w in enumerate(words)}}
    rng = random.Random(seed)

    def rand(*shape):
        n = 1
        for s in shape:
            n *= s
        return shape, [rng.uniform(-1.0, 1.0) for _ in range(n)]

    positions = 32
    write_safetensors(directory / "model.safetensors", {
        "transformer.wte.weight": rand(len(vocab), dim),
        "transformer.wpe.weight": rand(positions, dim),
        "transformer.h.0.ln_1.weight": rand(dim),
        "transformer.h.0.mlp.c_fc.weight": rand(dim, 4 * dim),
        "transformer.ln_f.weight": rand(dim),
    })
    config = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": len(vocab),
        "n_embd": dim, "n_layer": 1, "n_head": 2, "n_positions": positions,
        "bos_token_id": 0, "eos_token_id": 0, "tie_word_embeddings": True,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 0, "content": END, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
        "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": END},
    }
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer, indent=2))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": END, "eos_token": END, "unk_token": END,
         "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))
    return directory


@pytest.fixture(scope="session")
def pair(tmp_path_factory):
    """(source, helper): 240 source words and 160 helper words, 120 of them shared."""
    root = tmp_path_factory.mktemp("models")
    words = [f"w{i:03d}" for i in range(280)]
    source = write_gpt2(root / "source", words[:240], dim=24, seed=1)
    helper = write_gpt2(root / "helper", words[120:280], dim=12, seed=2)
    return source, helper


@pytest.fixture
def out_parent(tmp_path):
    """An empty directory for outputs; the test checks that nothing but what it expects is left."""
    d = tmp_path / "outputs"
    d.mkdir()
    return d


def cli_binary():
    """The CLI to compare with: $CLP_GPU_BIN (CI: the binary `cargo test` built), else the
    installed `clp-gpu` console command (the same program, through the package)."""
    return os.environ.get("CLP_GPU_BIN") or shutil.which("clp-gpu")


def model_files(directory):
    """Every file of an output directory but clp_transfer.json (arguments and timings): name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir())
            if p.name != "clp_transfer.json"}
