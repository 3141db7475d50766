"""Evaluation figures: accuracy and F1.

- Sequence classification: accuracy, and macro F1 over the label names.
- Token classification, per word (its first subword's prediction; a word cut off by
  truncation counts as predicted ``O``, or as wrong when there is no ``O``): word accuracy, and
  F1 over entity spans when every tag is ``O`` or ``B-X``/``I-X`` (CoNLL's rule: a span
  starts at ``B-X``, or at an ``I-X`` that does not continue an ``X``; a span is right only
  when its type and both ends are), else macro F1 over the tags.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Set, Tuple


def macro_f1(gold: Sequence[int], pred: Sequence[Optional[int]], n_labels: int) -> float:
    """Mean over labels that occur in gold or predictions of per-label F1."""
    scores = []
    for c in range(n_labels):
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0


def is_bio(names: Sequence[str]) -> bool:
    return all(n == "O" or (n[:2] in ("B-", "I-") and len(n) > 2) for n in names)


def spans(tags: Sequence[str]) -> Set[Tuple[int, int, str]]:
    """Entity spans (start, end exclusive, type) of a BIO tag sequence."""
    out = set()
    start, kind = None, None
    for i, t in enumerate(list(tags) + ["O"]):
        begins = t.startswith("B-") or (t.startswith("I-") and t[2:] != kind)
        if start is not None and (t == "O" or begins):
            out.add((start, i, kind))
            start, kind = None, None
        if begins:
            start, kind = i, t[2:]
    return out


def span_f1(gold: List[List[str]], pred: List[List[str]]) -> float:
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gs, ps = spans(g), spans(p)
        tp += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    return 2 * tp / (n_gold + n_pred) if n_gold + n_pred else 0.0


def sequence_scores(gold: Sequence[int], pred: Sequence[int], n_labels: int) -> Dict[str, float]:
    acc = sum(1 for g, p in zip(gold, pred) if g == p) / len(gold)
    return {"accuracy": acc, "f1": macro_f1(gold, pred, n_labels)}


def token_scores(
    gold: List[List[int]], pred: List[List[Optional[int]]], names: Sequence[str]
) -> Dict[str, float]:
    """``pred`` holds None for words cut off by truncation."""
    o = names.index("O") if "O" in names else None
    filled = [[o if p is None else p for p in row] for row in pred]
    flat_g = [g for row in gold for g in row]
    flat_p = [p for row in filled for p in row]
    acc = sum(1 for g, p in zip(flat_g, flat_p) if g == p) / max(1, len(flat_g))
    if is_bio(names):
        f1 = span_f1(
            [[names[g] for g in row] for row in gold],
            [["O" if p is None else names[p] for p in row] for row in filled],
        )
        kind = "entity span F1"
    else:
        f1 = macro_f1(flat_g, flat_p, len(names))
        kind = "macro F1 over tags"
    return {"accuracy": acc, "f1": f1, "f1_kind": kind}
