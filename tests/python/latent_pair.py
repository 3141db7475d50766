"""Builds a source/helper model pair whose embeddings share hidden structure, for trying
`clp-gpu evaluate` without downloads.

Two made-up languages share a third of their words. Each token gets a latent meaning vector
(tokens of shared words get the same one in both vocabularies, word pieces get the mean of
the words they occur in plus their own part); each model maps the latents through its own
random anisotropic linear map, adds a common offset (as trained embeddings have) and noise.
Both are saved as GPT-2 models (source d=256, helper d=128) with byte-level BPE tokenizers.

Usage: python tests/python/latent_pair.py OUTDIR   (writes OUTDIR/source and OUTDIR/helper)
"""

import random
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

LATENT = 48


def words(rng, n, syllables):
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
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
    # Latent per token: the meaning of the whole word it spells, else the mean meaning of the
    # words it occurs in, plus a token-specific part.
    lat = torch.zeros(len(fast), LATENT)
    for t, i in fast.get_vocab().items():
        text = fast.convert_tokens_to_string([t]).strip()
        own = torch.randn(LATENT, generator=torch.Generator().manual_seed(hash(t) % 2**31))
        if text in meaning:
            lat[i] = meaning[text]
        else:
            hits = [meaning[w] for w in vocab_words if text and text in w][:50]
            base = torch.stack(hits).mean(0) if hits else torch.zeros(LATENT)
            lat[i] = base + 0.5 * own
    scale = 1.0 / torch.sqrt(1.0 + torch.arange(dim) / 8.0)
    a = torch.randn(LATENT, dim, generator=g) * scale
    offset = torch.randn(dim, generator=g) * 0.8
    emb = lat @ a / LATENT**0.5 + offset + 0.15 * torch.randn(len(fast), dim, generator=g)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(fast), n_embd=dim, n_layer=1, n_head=4,
                                       bos_token_id=0, eos_token_id=0))
    with torch.no_grad():
        model.transformer.wte.weight.copy_(emb)
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    return len(fast)


def main():
    out = Path(sys.argv[1])
    rng = random.Random(0)
    shared = words(rng, 400, ["ka", "to", "mi", "ra", "ne", "so", "lu", "pe"])
    en = shared + words(rng, 800, ["th", "ing", "er", "a", "o", "st", "ck", "ea"])
    de = shared + words(rng, 800, ["sch", "ei", "en", "ü", "ch", "au", "ung", "ie"])
    meaning = {w: torch.randn(LATENT, generator=torch.Generator().manual_seed(hash(w) % 2**31))
               for w in set(en) | set(de)}
    text = lambda ws: [" ".join(rng.choice(ws) for _ in range(14)) for _ in range(3000)]
    ns = build(out / "source", en, text(en), 3000, 256, 1, meaning)
    nh = build(out / "helper", de, text(de), 2000, 128, 2, meaning)
    print(f"source {ns} tokens (d 256), helper {nh} tokens (d 128) in {out}")


if __name__ == "__main__":
    main()
