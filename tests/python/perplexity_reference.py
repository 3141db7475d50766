"""Per-token log-probabilities of the tiny perplexity fixtures, computed with transformers.

Run by hand (torch and transformers from PyPI; CPU is enough):

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch transformers
    /tmp/venv/bin/python tests/python/perplexity_reference.py

It writes tests/fixtures/perplexity/reference.json, which tests/perplexity.rs compares with
clp-gpu's candle forward pass (within 1e-4). Each model directory under
tests/fixtures/perplexity/ holds config.json and model.safetensors; all share tokenizer.json.
For every text, the ids are the tokenizer's without special tokens, prefixed with the config's
bos_token_id, and log_probs[i] = ln p(ids[i + 1] | ids[..=i]) from one forward pass in float32.
"""

import json
import pathlib

import torch
import transformers
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "perplexity"
FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi", "phi3"]
TEXTS = [
    "The quick brown fox jumps over the lazy dog. Zwölf Boxkämpfer jagen Viktor.",
    "a",
    "Numbers 1234567890 and symbols !?#;\nnew line",
]


def main():
    torch.manual_seed(0)
    tok = Tokenizer.from_file(str(FIXTURES / "tokenizer.json"))
    out = {
        "generator": f"tests/python/perplexity_reference.py (transformers {transformers.__version__}, torch {torch.__version__})",
        "texts": TEXTS,
        "models": {},
    }
    for fam in FAMILIES:
        model = AutoModelForCausalLM.from_pretrained(
            FIXTURES / fam, dtype=torch.float32, attn_implementation="eager"
        )
        model.eval()
        bos = model.config.bos_token_id
        rows = []
        for text in TEXTS:
            ids = tok.encode(text, add_special_tokens=False).ids
            if bos is not None:
                ids = [bos] + ids
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].double()
            logp = torch.log_softmax(logits, dim=-1)
            lp = [logp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]
            assert len(ids) <= model.config.max_position_embeddings, (fam, len(ids))
            rows.append({"ids": ids, "log_probs": lp})
        out["models"][fam] = rows
        print(fam, "mean nats/token", -sum(sum(r["log_probs"]) for r in rows) / sum(len(r["log_probs"]) for r in rows))
    (FIXTURES / "reference.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
