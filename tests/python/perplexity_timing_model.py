"""A random Llama of realistic width for timing `clp-gpu perplexity` (not a test fixture).

    /work/venv-torch/bin/python tests/python/perplexity_timing_model.py OUT_DIR TOKENIZER_DIR

Writes OUT_DIR with config.json, model.safetensors (bf16) and the tokenizer.json of
TOKENIZER_DIR: hidden 2048, 4 layers, 16 heads with 8 KV heads, MLP 5632 (TinyLlama's widths,
fewer layers), the tokenizer's vocabulary, tied embeddings, seeded random weights. Used by
examples/perplexity_speed.rs (one pass per window vs token by token).
"""

import json
import pathlib
import shutil
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    out, tok_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    vocab = len(json.loads((tok_dir / "tokenizer.json").read_text())["model"]["vocab"])
    vocab = (vocab + 127) // 128 * 128
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=4,
        num_attention_heads=16,
        num_key_value_heads=8,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    shutil.copy(tok_dir / "tokenizer.json", out / "tokenizer.json")
    print("wrote", out, sum(p.numel() for p in model.parameters()) / 1e6, "M parameters")


if __name__ == "__main__":
    main()
