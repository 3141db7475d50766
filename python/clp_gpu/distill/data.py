"""Training and held-out text, batching and masking.

- A corpus is a text file with one document per line, or JSONL with a ``text`` field
  (``.jsonl`` / ``.json`` names, or a first line that parses as a JSON object). Empty lines
  are skipped. ``eval_lines`` documents of each corpus, chosen by the seed, are held out and
  never trained on.
- Training documents are tokenized by the student's tokenizer without special tokens,
  concatenated (an end/separator token between documents where the tokenizer has one) and cut
  into chunks that, with the tokenizer's special tokens added, are ``seq_len`` long (BiStil's
  "concatenate and chunk"); a corpus's last chunk may be shorter and is padded.
- Balance: example ``n`` of the run (counted over all steps, ranks and accumulation steps)
  comes from corpus ``n mod k``, and is the ``(n div k)``-th draw from that corpus, which
  walks through a seeded permutation per pass. Every corpus is drawn equally whatever its size,
  and the batch of any step is a pure function of the seed and the step: a resumed run and a
  run split over several processes see the same examples.
- Masking (encoders): 15% of the real, non-special tokens are chosen; of those 80% become the
  mask token, 10% a random token, 10% stay (BERT's rule), from a generator seeded by the seed
  and the step.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch


class CorpusError(ValueError):
    """A corpus is missing, unreadable or empty."""


def read_corpus(path: Path) -> List[str]:
    """The documents of a corpus file (plain lines, or JSONL with ``text``)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus {path} does not exist; pass a text or JSONL file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus {path} is not UTF-8 text ({e.reason} at byte {e.start})") from e
    lines = [line for line in lines if line.strip()]
    first = lines[0].lstrip() if lines else ""
    jsonl = path.suffix in (".jsonl", ".json") or first.startswith("{")
    if jsonl:
        docs = []
        for number, line in enumerate(lines, 1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"corpus {path} line {number} is not JSON ({e.msg}); "
                                  "use one JSON object with a \"text\" field per line") from e
            text = obj.get("text") if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise CorpusError(f"corpus {path} line {number} has no \"text\" string field")
            if text.strip():
                docs.append(text)
        lines = docs
    if not lines:
        raise CorpusError(f"corpus {path} is empty; it needs at least one non-empty document")
    return lines


def split_held_out(docs: Sequence[str], eval_lines: int, seed: int, name: str) -> Tuple[List[str], List[str]]:
    """(training documents, held-out documents): ``eval_lines`` documents picked by the seed."""
    if eval_lines >= len(docs):
        raise CorpusError(
            f"corpus {name} has {len(docs)} documents; --eval-lines {eval_lines} would leave "
            "none to train on (lower --eval-lines or add text)"
        )
    order = list(range(len(docs)))
    random.Random(f"held-out {seed} {name}").shuffle(order)
    held = set(order[:eval_lines])
    return ([d for i, d in enumerate(docs) if i not in held], [docs[i] for i in sorted(held)])


def special_frame(tokenizer, sample: str) -> Tuple[List[int], List[int]]:
    """The ids the tokenizer puts before and after a text (e.g. [CLS] … [SEP], or <s> …),
    found by tokenizing ``sample`` with and without special tokens."""
    bare = tokenizer(sample, add_special_tokens=False)["input_ids"]
    full = tokenizer(sample, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    return [], []


def chunk_documents(tokenizer, docs: Sequence[str], seq_len: int) -> List[List[int]]:
    """Token id lists of at most ``seq_len`` ids (special tokens included), concatenated and cut."""
    head, tail = special_frame(tokenizer, docs[0] if docs else "a")
    body = seq_len - len(head) - len(tail)
    if body < 1:
        raise CorpusError(f"--seq-len {seq_len} leaves no room next to the special tokens")
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    stream: List[int] = []
    for i, doc in enumerate(docs):
        if i and sep is not None:
            stream.append(sep)
        stream.extend(tokenizer(doc, add_special_tokens=False)["input_ids"])
    return [head + stream[s : s + body] + tail for s in range(0, len(stream), body)]


def pad_batch(seqs: Sequence[List[int]], pad_id: int, seq_len: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of ``seqs`` right-padded to ``seq_len`` (default: the longest)."""
    width = seq_len or max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = torch.tensor(s[:width], dtype=torch.long)
        mask[b, : len(s)] = 1
    return ids, mask


@dataclass
class BalancedStream:
    """Example ``n`` → a chunk, drawing equally from each corpus (see the module docs)."""

    corpora: List[List[List[int]]]
    seed: int

    def example(self, n: int) -> Tuple[int, List[int]]:
        """(corpus index, chunk) of the run's ``n``-th example."""
        k = len(self.corpora)
        c, m = n % k, n // k
        chunks = self.corpora[c]
        epoch, pos = divmod(m, len(chunks))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + c * 7919 + epoch)
        order = torch.randperm(len(chunks), generator=g)
        return c, chunks[int(order[pos])]

    def examples(self, start: int, count: int) -> List[Tuple[int, List[int]]]:
        return [self.example(n) for n in range(start, start + count)]


def mask_tokens(
    ids: torch.Tensor,
    maskable: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    generator: torch.Generator,
    prob: float = 0.15,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: (inputs, labels). ``maskable`` [same shape] is True on real non-special
    tokens; labels are -100 except at the chosen positions."""
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & maskable.bool()
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    roll = torch.rand(ids.shape, generator=generator)
    to_mask = chosen & (roll < 0.8)
    to_random = chosen & (roll >= 0.8) & (roll < 0.9)
    randoms = torch.randint(vocab_size, ids.shape, generator=generator)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, randoms, inputs)
    return inputs, labels
