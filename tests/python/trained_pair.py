"""Builds a *trained* source/helper pair of tiny Llama models on two made-up languages, for
measuring what each transfer method gives in bits per byte without downloads.

The two languages share one grammar over CONCEPTS concepts and differ in spelling:
- Each concept has a word class (a few classes, with a sparse class-to-class transition table),
  a Zipf frequency and two latent vectors u, v. The next concept after i is drawn from i's 64
  candidate successors (the best by log A[class_i, class_j] + log f_j + BETA * u_i.v_j) with
  those scores as logits, plus a per-document topic bias (GAMMA * w_topic.v_j), so both the
  previous word and the wider context are informative. A sentence ends after a word with a
  probability that depends on its class; sentences end in . ? or !, get commas, start with a
  capital, and paragraphs are separated by newlines.
- About a third of the concepts are spelled identically in both languages (overlap words); the
  others have one spelling per language, so a T-only word is the translation of an S-only word
  with exactly the same grammar. Language S is plain ASCII; language T's own words use umlauts
  and sharp s (ä ö ü ß), so byte-level and byte-fallback spellings differ.

Written to OUTDIR:
- source/: LlamaForCausalLM (d 256, 3 layers, context 128, untied) trained on S, with a
  SentencePiece-style BPE tokenizer like Llama 2's (Prepend("▁") + Replace(" ", "▁"), BPE with
  byte_fallback, <0x00>..<0xFF> as ordinary vocabulary entries, <unk> <s> </s>).
- helper/: LlamaForCausalLM (d 128, 2 layers) trained on T, with a GPT-2-style byte-level BPE
  tokenizer (ByteLevel pre-tokenizer and decoder, <|endoftext|> as bos/eos).
- text_source.jsonl, text_target.jsonl: held-out S and T documents (~200 KB each, "text").
- dictionary.json: every T word (by its T spelling, lower case) -> the S word of its concept,
  for an oracle transfer.
Each model trains for --minutes wall-clock minutes (a cosine schedule over the time budget) or,
with --steps N, for exactly N steps. Languages, tokenizers, data order and initialisation are
seeded (no use of Python's hash()); with --steps and the same torch build and thread count the
weights are reproducible too. The final training loss and the held-out bits/byte (computed here
the way `clp-gpu perplexity --context 128` does: each document BOS-prefixed, windows of 128
tokens, BOS included, each again BOS-prefixed) are printed.

Usage: python tests/python/trained_pair.py OUTDIR [--minutes M] [--steps N] [--threads T]
"""

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CONCEPTS = 1200
CLASSES = 8
LATENT = 12
CANDIDATES = 64
BETA = 1.2
GAMMA = 1.0
TOPICS = 16
CONTEXT = 128
TRAIN_BYTES = 3_000_000
HELDOUT_BYTES = 200_000


# ---------------------------------------------------------------- languages

def make_words(rng, n, onsets, vowels, codas, taken, keep=lambda w: True):
    """n distinct words not in `taken` (and for which keep(w)); words for earlier (more
    frequent) slots are shorter."""
    out = []
    while len(out) < n:
        rank = len(out)
        nsyl = 1 if rank < 40 else rng.randint(1, 2) if rank < 400 else rng.randint(1, 3)
        w = "".join(rng.choice(onsets) + rng.choice(vowels) + (rng.choice(codas) if rng.random() < 0.35 else "")
                    for _ in range(nsyl))
        if len(w) >= 2 and w not in taken and keep(w):
            taken.add(w)
            out.append(w)
    return out


def build_languages(seed=0):
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    # Word classes, Zipf frequencies, latent vectors.
    cls_p = torch.tensor([0.28, 0.2, 0.14, 0.12, 0.1, 0.07, 0.05, 0.04])
    cls = torch.multinomial(cls_p, CONCEPTS, replacement=True, generator=g)
    rank = torch.randperm(CONCEPTS, generator=g)
    logf = -1.0 * torch.log(rank.double() + 10.0)
    u = torch.randn(CONCEPTS, LATENT, generator=g, dtype=torch.float64)
    v = torch.randn(CONCEPTS, LATENT, generator=g, dtype=torch.float64)
    # Class transitions: each class allows 3 next classes.
    A = torch.full((CLASSES, CLASSES), -1e9, dtype=torch.float64)
    for c in range(CLASSES):
        nxt = torch.randperm(CLASSES, generator=g)[:3]
        A[c, nxt] = torch.log(torch.rand(3, generator=g, dtype=torch.float64) + 0.2)
        A[c, (c + 1) % CLASSES] = max(A[c, (c + 1) % CLASSES].item(), math.log(0.6))  # connected
    p_end = torch.rand(CLASSES, generator=g, dtype=torch.float64) * 0.35
    p_end[cls_p.argsort()[-2:]] = 0.02  # the two big classes rarely end a sentence
    start_cls = torch.log(torch.rand(CLASSES, generator=g, dtype=torch.float64) + 0.05)
    # Successor candidates and their logits; state CONCEPTS is the sentence boundary.
    score = A[cls][:, cls] + logf[None, :] + BETA * (u @ v.T) / math.sqrt(LATENT) * 2.0
    top = score.topk(CANDIDATES, dim=1)
    cand = torch.empty(CONCEPTS + 1, CANDIDATES + 1, dtype=torch.long)
    logit = torch.empty(CONCEPTS + 1, CANDIDATES + 1, dtype=torch.float64)
    cand[:CONCEPTS, :CANDIDATES] = top.indices
    logit[:CONCEPTS, :CANDIDATES] = torch.log_softmax(top.values, 1) + torch.log1p(-p_end[cls])[:, None]
    cand[:CONCEPTS, CANDIDATES] = CONCEPTS
    logit[:CONCEPTS, CANDIDATES] = torch.log(p_end[cls])
    s = start_cls[cls] + logf
    st = s.topk(CANDIDATES + 1)
    cand[CONCEPTS] = st.indices
    logit[CONCEPTS] = torch.log_softmax(st.values, 0)
    topic = torch.randn(TOPICS, LATENT, generator=g, dtype=torch.float64)
    bias = torch.cat([GAMMA * (topic @ v.T) / math.sqrt(LATENT),
                      torch.zeros(TOPICS, 1, dtype=torch.float64)], 1)
    # Spellings: frequent concepts get short words; a third are spelled the same in both.
    order = rank.argsort().tolist()  # concept ids from most to least frequent
    shared = set(torch.randperm(CONCEPTS, generator=g)[: CONCEPTS // 3].tolist())
    taken = set()
    s_on = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "th", "st", "ch", "w"]
    s_vo = ["a", "e", "i", "o", "u", "ea", "ou"]
    s_co = ["n", "r", "s", "t", "ng", "ck", "ll"]
    t_on = ["b", "d", "f", "g", "k", "l", "m", "n", "r", "s", "t", "w", "z", "sch", "pf", "kr"]
    t_vo = ["a", "e", "i", "o", "u", "ä", "ö", "ü", "ei", "au", "ie"]
    t_co = ["n", "r", "ß", "ch", "tz", "nk", "lt"]
    shared_ids = [c for c in order if c in shared]
    own_ids = [c for c in order if c not in shared]
    sw = make_words(rng, len(shared_ids), s_on + t_on[:4], s_vo + ["ie"], s_co, taken)
    so = make_words(rng, len(own_ids), s_on, s_vo, s_co, taken)
    # T's own words mostly carry a non-ASCII letter.
    to = make_words(rng, len(own_ids), t_on, t_vo, t_co, taken,
                    keep=lambda w: any(ch in w for ch in "äöüß") or rng.random() < 0.25)
    spell_s, spell_t = [None] * CONCEPTS, [None] * CONCEPTS
    for c, w in zip(shared_ids, sw):
        spell_s[c] = spell_t[c] = w
    for c, a, b in zip(own_ids, so, to):
        spell_s[c], spell_t[c] = a, b
    return dict(cand=cand, logit=logit, bias=bias, spell_s=spell_s, spell_t=spell_t)


def generate_chains(lang, ndocs, seed, words=(120, 380)):
    """Concept sequences (lists of ints, CONCEPTS = sentence end) and topic per document."""
    rng = np.random.default_rng(seed)
    cand, logit, bias = (lang[k].numpy() for k in ("cand", "logit", "bias"))
    lengths = rng.integers(words[0], words[1], ndocs)
    topics = rng.integers(0, TOPICS, ndocs)
    steps = int(lengths.max()) + 40
    cur = np.full(ndocs, CONCEPTS)
    seq = np.empty((ndocs, steps), dtype=np.int64)
    rows = np.arange(ndocs)
    for t in range(steps):
        c = cand[cur]
        lg = logit[cur] + bias[topics[:, None], c]
        p = np.exp(lg - lg.max(1, keepdims=True))
        cdf = p.cumsum(1)
        r = rng.random(ndocs) * cdf[:, -1]
        pick = np.minimum((cdf < r[:, None]).sum(1), CANDIDATES)
        cur = c[rows, pick]
        seq[:, t] = cur
    out = []
    for d in range(ndocs):
        row = seq[d].tolist()
        n = int(lengths[d])
        # cut after the last sentence end before n words
        ends = [i for i in range(min(n, len(row))) if row[i] == CONCEPTS]
        out.append(row[: ends[-1] + 1] if ends else row[:n] + [CONCEPTS])
    return out


def render(chains, spell, seed):
    """The same chain renders identically (punctuation, capitals) in both languages."""
    docs = []
    for k, chain in enumerate(chains):
        rng = random.Random(seed * 1_000_003 + k)
        parts, sent, first = [], [], True
        for c in chain:
            if c == CONCEPTS:
                if not sent:
                    continue
                r = rng.random()
                s = " ".join(sent) + ("." if r < 0.75 else "?" if r < 0.9 else "!")
                parts.append(s)
                parts.append("\n" if rng.random() < 0.2 else " ")
                sent, first = [], True
                continue
            w = spell[c]
            if first:
                w = w[0].upper() + w[1:]
                first = False
            elif sent and rng.random() < 0.07:
                sent[-1] += ","
            sent.append(w)
        docs.append("".join(parts).strip())
    return docs


def corpus(lang, which, nbytes, seed):
    docs, total, k = [], 0, 0
    while total < nbytes:
        chains = generate_chains(lang, 2000, seed + 7919 * k)
        for d in render(chains, lang["spell_" + which], seed + k):
            docs.append(d)
            total += len(d.encode())
            if total >= nbytes:
                break
        k += 1
    return docs


# ---------------------------------------------------------------- tokenizers

def sentencepiece_bpe(texts, vocab_size, added_text=()):
    """A Llama-2-style tokenizer.json: BPE with byte fallback, bytes as ordinary entries; each of
    `added_text` becomes a non-special, unnormalized added token (as Gemma ships "\n")."""
    trial = Tokenizer(models.BPE())
    trial.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    specials = ["<unk>", "<s>", "</s>"]
    trial.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size - 256, special_tokens=specials,
                                                          show_progress=False))
    tv = trial.get_vocab()
    state = json.loads(trial.to_str())
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["model"]["merges"]]
    vocab = {t: i for i, t in enumerate(specials)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in sorted(tv.items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(specials)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in added_text])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.add_bos_token = False
    return fast, vocab["<s>"], vocab["</s>"]


def bytelevel_bpe(texts, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")
    eid = tok.token_to_id("<|endoftext|>")
    return fast, eid, eid


# ---------------------------------------------------------------- training

def windows(tok, docs, bos):
    """Each document BOS-prefixed and cut into windows of CONTEXT tokens, each again BOS-prefixed."""
    out = []
    for ids in tok.backend_tokenizer.encode_batch(docs, add_special_tokens=False):
        ids = ids.ids
        for s in range(0, len(ids), CONTEXT - 1):
            out.append([bos] + ids[s: s + CONTEXT - 1])
    return out


def pad(batch):
    x = torch.zeros(len(batch), CONTEXT, dtype=torch.long)
    y = torch.full((len(batch), CONTEXT), -100, dtype=torch.long)
    for i, w in enumerate(batch):
        x[i, : len(w)] = torch.tensor(w)
        y[i, : len(w)] = torch.tensor(w)
    return x, y


def heldout_bpb(model, tok, docs, bos):
    wins = windows(tok, docs, bos)
    nll = 0.0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(wins), 32):
            x, y = pad(wins[i: i + 32])
            logits = model(input_ids=x).logits.float()
            lp = torch.log_softmax(logits[:, :-1], -1)
            tgt = y[:, 1:]
            m = tgt != -100
            nll -= lp.gather(2, tgt.clamp(min=0)[..., None]).squeeze(-1)[m].sum().item()
    model.train()
    return nll / math.log(2) / sum(len(d.encode()) for d in docs)


def train(path, tok, bos, eos, train_docs, held_docs, dim, layers, seed, minutes, steps, label):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=dim, intermediate_size=dim * 8 // 3 // 8 * 8,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                      max_position_embeddings=CONTEXT, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=False, bos_token_id=bos, eos_token_id=eos, pad_token_id=None)
    model = LlamaForCausalLM(cfg)
    wins = windows(tok, train_docs, bos)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(wins), generator=g).tolist()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    batch, warm, t0 = 16, 30, time.time()
    budget = minutes * 60.0
    step, pos, ema = 0, 0, None
    print(f"{label}: {len(tok)} tokens, d {dim}, {layers} layers, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {len(wins)} training windows",
          flush=True)
    while True:
        frac = step / steps if steps else (time.time() - t0) / budget
        if frac >= 1.0:
            break
        lr = 3e-3 * min(1.0, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for pg in opt.param_groups:
            pg["lr"] = lr
        if pos + batch > len(perm):
            perm, pos = torch.randperm(len(wins), generator=g).tolist(), 0
        x, y = pad([wins[i] for i in perm[pos: pos + batch]])
        pos += batch
        loss = model(input_ids=x, labels=y).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 100 == 0:
            print(f"  {label} step {step} loss {loss.item():.3f} (ema {ema:.3f}) lr {lr:.2e} "
                  f"{time.time() - t0:.0f}s", flush=True)
    bpb = heldout_bpb(model, tok, held_docs, bos)
    print(f"{label}: {step} steps in {time.time() - t0:.0f}s, final training loss {loss.item():.3f} "
          f"(ema {ema:.3f} nats/token), held-out {bpb:.3f} bits/byte", flush=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return step, ema, bpb


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--minutes", type=float, default=4.0, help="training time per model (default 4)")
    ap.add_argument("--steps", type=int, default=0, help="train exactly this many steps instead")
    ap.add_argument("--gemma-newlines", action="store_true",
                    help='give the source tokenizer "\\n" and "\\n\\n" as non-special added tokens, as Gemma '
                         "ships them (its <0x0A> byte piece then goes unused in training)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared 2-core machine 2 threads ran 8x slower)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = Path(a.outdir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    lang = build_languages(0)
    # Two different chain streams for training S and T (the same grammar); held-out streams apart.
    s_train = corpus(lang, "s", TRAIN_BYTES, 1000)
    t_train = corpus(lang, "t", TRAIN_BYTES * 3 // 4, 2000)
    s_held = corpus(lang, "s", HELDOUT_BYTES, 3000)
    t_held = corpus(lang, "t", HELDOUT_BYTES, 4000)
    for name, docs in [("text_source.jsonl", s_held), ("text_target.jsonl", t_held)]:
        with open(out / name, "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
    dictionary = {t: s for s, t in zip(lang["spell_s"], lang["spell_t"])}
    (out / "dictionary.json").write_text(json.dumps(dictionary, ensure_ascii=False, indent=0, sort_keys=True))
    print(f"languages: {CONCEPTS} concepts, {sum(s == t for s, t in dictionary.items())} spelled the same; "
          f"S train {sum(map(len, s_train)) / 1e6:.1f} MB, T train {sum(map(len, t_train)) / 1e6:.1f} MB; "
          f"{time.time() - t0:.0f}s", flush=True)
    print("  S:", s_held[0][:160].replace("\n", "\\n"))
    print("  T:", t_held[0][:160].replace("\n", "\\n"))
    # Like Llama 2, no newline piece: "\n" is spelled <0x0A> by byte fallback; with
    # --gemma-newlines, like Gemma: "\n" and "\n\n" are added tokens.
    added = ["\n\n", "\n"] if a.gemma_newlines else []
    stok, sbos, seos = sentencepiece_bpe([d.replace("\n", " ") for d in s_train[:3000]], 4000, added)
    htok, hbos, heos = bytelevel_bpe(t_train[:3000], 3000)
    print(f"tokenizers: source {len(stok)} (SentencePiece-style BPE, byte fallback), "
          f"helper {len(htok)} (byte-level BPE); {time.time() - t0:.0f}s", flush=True)
    train(out / "source", stok, sbos, seos, s_train, s_held, 256, 3, 1, a.minutes, a.steps, "source")
    train(out / "helper", htok, hbos, heos, t_train, t_held, 128, 2, 2, a.minutes, a.steps, "helper")
    print(f"wrote {out}/source, {out}/helper, text_source.jsonl, text_target.jsonl, dictionary.json "
          f"in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
