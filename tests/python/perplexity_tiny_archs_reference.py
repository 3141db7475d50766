"""Per-token log-probabilities of every tiny architecture fixture, computed with transformers.

Run by hand (torch and transformers from PyPI; CPU is enough):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers
    /tmp/venv/bin/python tests/python/perplexity_tiny_archs_reference.py

It writes tests/fixtures/perplexity/tiny-archs.json, which tests/perplexity.rs compares with
clp-gpu's own forward passes (within 1e-4). The models are tests/fixtures/tiny-archs/NAME
(config.json, model.safetensors, the shared 700-token tokenizer.json), loaded in float32 with
eager attention, and with every parameter of two or more dimensions multiplied by SCALE (8,
exact in every float format): the fixtures' weights (std 0.02) make attention nearly uniform, so
rotary layout, masks or ALiBi would hardly move the log-probabilities; scaled, they do. The Rust
test applies the same scaling to the checkpoint before loading it.

Decoders: ids are the tokenizer's without special tokens, prefixed with bos_token_id (top level,
else text_config) when config.json has one; log_probs[i] = ln p(ids[i + 1] | ids[..=i]) from one
forward pass.

Masked-LM encoders: pseudo-log-likelihood. ids are the tokenizer's (it adds no special tokens);
log_probs[i] = ln p(ids[i] | ids with position i replaced by the mask token), the mask token
being <unk> (id 0): the shared tokenizer has no mask token, and the test names <unk> as
mask_token in tokenizer_config.json.
"""

import json
import pathlib

import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoModelForMaskedLM

HERE = pathlib.Path(__file__).resolve().parent
ARCHS = HERE.parent / "fixtures" / "tiny-archs"
OUT = HERE.parent / "fixtures" / "perplexity" / "tiny-archs.json"
DECODERS = [
    "gpt2", "gpt_bigcode", "bloom", "falcon", "gpt_neox", "gptj", "opt", "llama", "mistral",
    "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "gemma3", "phi", "phi3",
    "stablelm", "olmo2", "cohere", "granite", "starcoder2", "smollm3", "llava",
]
MULTIMODAL = {"gemma3", "llava"}
ENCODERS = ["bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2", "modernbert"]
MASK_ID = 0
SCALE = 8.0
TEXTS = [
    "The quick brown fox jumps over the lazy dog. Zwölf Boxkämpfer jagen Viktor.",
    "a",
    "Numbers 1234567890 and symbols !?#;\nnew line",
]


def bos_of(path):
    """bos_token_id as config.json has it (top level, else text_config), as clp-gpu reads it:
    not the config class's default (LlavaConfig's text_config would default to 1)."""
    raw = json.loads((path / "config.json").read_text())
    bos = raw.get("bos_token_id")
    if bos is None:
        bos = raw.get("text_config", {}).get("bos_token_id")
    return bos


def sharpen(model):
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(SCALE)
    return model


def decoder_rows(name, tok):
    path = ARCHS / name
    auto = AutoModelForImageTextToText if name in MULTIMODAL else AutoModelForCausalLM
    model = sharpen(auto.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval())
    bos = bos_of(path)
    rows = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        if bos is not None:
            ids = [bos] + ids
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        rows.append({"ids": ids, "log_probs": [logp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]})
    return rows


def encoder_rows(name, tok):
    model = sharpen(AutoModelForMaskedLM.from_pretrained(
        ARCHS / name, dtype=torch.float32, attn_implementation="eager"
    ).eval())
    rows = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        batch = torch.tensor([ids] * len(ids))
        for i in range(len(ids)):
            batch[i, i] = MASK_ID
        with torch.no_grad():
            logits = model(input_ids=batch).logits.double()
        logp = torch.log_softmax(logits, dim=-1)
        rows.append({"ids": ids, "log_probs": [logp[i, i, ids[i]].item() for i in range(len(ids))]})
    return rows


def main():
    torch.manual_seed(0)
    tok = Tokenizer.from_file(str(ARCHS / "llama" / "tokenizer.json"))
    out = {
        "generator": f"tests/python/perplexity_tiny_archs_reference.py (transformers {transformers.__version__}, torch {torch.__version__})",
        "texts": TEXTS,
        "mask_token_id": MASK_ID,
        "scale": SCALE,
        "decoders": {},
        "encoders": {},
    }
    for name in DECODERS:
        try:
            out["decoders"][name] = decoder_rows(name, tok)
        except Exception as e:  # noqa: BLE001 - report and go on; the test lists what is missing
            print(name, "FAILED:", e)
    for name in ENCODERS:
        try:
            out["encoders"][name] = encoder_rows(name, tok)
        except Exception as e:  # noqa: BLE001
            print(name, "FAILED:", e)
    OUT.write_text(json.dumps(out, indent=0) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
