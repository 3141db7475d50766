"""Builds a source/helper model pair whose embeddings share hidden structure, for trying
`clp-gpu evaluate` without downloads.

Two made-up languages share a third of their words. Each token gets a latent meaning vector
(tokens of shared words get the same one in both vocabularies, word pieces get the mean of
the words they occur in plus their own part); each model maps the latents through its own
random anisotropic linear map, adds a common offset (as trained embeddings have) and noise.
Both are saved as GPT-2 models (source d=256, helper d=128) with byte-level BPE tokenizers.

Usage: python tests/python/latent_pair.py OUTDIR [--scale S]   (writes OUTDIR/source and
OUTDIR/helper; --scale multiplies the words, vocabularies and texts by S and the widths up to
1024 / 512: S = 16 gives about 48k / 32k tokens)
"""

import random
import sys
import zlib
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

LATENT = 48


def words(rng, n, syllables, longest=4):
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, longest))))
    return sorted(out)


def build(path, vocab_words, texts, vocab_size, dim, seed, meaning):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    g = torch.Generator().manual_seed(seed)
    # The first 50 words each substring occurs in (an index, so large vocabularies stay fast).
    pieces = {}
    for w in vocab_words:
        for a in range(len(w)):
            for b in range(a + 1, len(w) + 1):
                hit = pieces.setdefault(w[a:b], [])
                if len(hit) < 50 and (not hit or hit[-1] != w):
                    hit.append(w)
    # Latent per token: the meaning of the whole word it spells, else the mean meaning of the
    # words it occurs in, plus a token-specific part.
    lat = torch.zeros(len(fast), LATENT)
    for t, i in fast.get_vocab().items():
        text = fast.convert_tokens_to_string([t]).strip()
        own = torch.randn(LATENT, generator=torch.Generator().manual_seed(zlib.crc32(t.encode())))
        if text in meaning:
            lat[i] = meaning[text]
        else:
            hits = [meaning[w] for w in pieces.get(text, [])]
            base = torch.stack(hits).mean(0) if hits else torch.zeros(LATENT)
            lat[i] = base + 0.5 * own
    scale = 1.0 / torch.sqrt(1.0 + torch.arange(dim) / 8.0)
    a = torch.randn(LATENT, dim, generator=g) * scale
    offset = torch.randn(dim, generator=g) * 0.8
    emb = lat @ a / LATENT**0.5 + offset + 0.15 * torch.randn(len(fast), dim, generator=g)
    torch.manual_seed(seed)  # the untouched layers, so that two runs write the same bytes
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(fast), n_embd=dim, n_layer=1, n_head=4,
                                       bos_token_id=0, eos_token_id=0))
    with torch.no_grad():
        model.transformer.wte.weight.copy_(emb)
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return len(fast)


def main():
    args = sys.argv[1:]
    scale = 1
    if len(args) == 3 and args[1] == "--scale":
        scale = int(args[2])
    elif len(args) != 1:
        sys.exit("usage: latent_pair.py OUTDIR [--scale S]")
    out = Path(args[0])
    rng = random.Random(0)
    longest = 4 if scale == 1 else 6  # 8 syllables make only 4,680 words of up to 4
    shared = words(rng, 400 * scale, ["ka", "to", "mi", "ra", "ne", "so", "lu", "pe"], longest)
    en = shared + words(rng, 800 * scale, ["th", "ing", "er", "a", "o", "st", "ck", "ea"], longest)
    de = shared + words(rng, 800 * scale, ["sch", "ei", "en", "ü", "ch", "au", "ung", "ie"], longest)
    meaning = {w: torch.randn(LATENT, generator=torch.Generator().manual_seed(zlib.crc32(w.encode())))
               for w in set(en) | set(de)}
    text = lambda ws: [" ".join(rng.choice(ws) for _ in range(14)) for _ in range(3000 * scale)]
    dim = min(256 * scale, 1024)
    ns = build(out / "source", en, text(en), 3000 * scale, dim, 1, meaning)
    nh = build(out / "helper", de, text(de), 2000 * scale, dim // 2, 2, meaning)
    print(f"source {ns} tokens (d {dim}), helper {nh} tokens (d {dim // 2}) in {out}")


if __name__ == "__main__":
    main()
