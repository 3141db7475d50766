"""Task data for ``distill-task``: JSONL files in one of two shapes.

- Sequence classification: ``{"text": ..., "label": ...}``, optionally with ``"text_pair"``
  (NLI's premise/hypothesis); every line of a file has the pair or none does.
- Token classification: ``{"tokens": [words...], "tags": [tags...]}``, one tag per word (NER).

Label names come from the training file (sorted; numerically when every name is an integer);
an evaluation file may only use those. Words are aligned to subword tokens the usual way: the
first subword of a word carries its tag and the others are ignored (-100), so only labelled
positions count in every loss and metric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from .errors import TaskError

SEQUENCE = "sequence"
TOKEN = "token"
IGNORE = -100


@dataclass
class TaskFile:
    """The records of one JSONL file (``labels`` are names, as in the file)."""

    path: Path
    task: str
    texts: List = field(default_factory=list)  # str, or List[str] words for TOKEN
    pairs: Optional[List[str]] = None
    labels: List = field(default_factory=list)  # str, or List[str] tags for TOKEN

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def name(self) -> str:
        return self.path.stem


def _label_name(value, path: Path, line: int, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TaskError(
            f"{path} line {line}: {key} {value!r} is not a string or an integer; write label "
            f"names as strings"
        )
    return str(value)


def _detect(obj: dict, path: Path, line: int) -> str:
    if "tokens" in obj:
        return TOKEN
    if "text" in obj:
        return SEQUENCE
    raise TaskError(
        f'{path} line {line}: neither "text" (sequence classification) nor "tokens" (token '
        f"classification); give one of them"
    )


def read_task_file(path, task: Optional[str] = None) -> TaskFile:
    """Reads and checks one JSONL file; ``task`` None detects it from the first record."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"{path}: no such file; give a JSONL task file")
    out: Optional[TaskFile] = None
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise TaskError(f"{path} line {n}: not JSON ({e.msg}); one JSON object per line") from None
            if not isinstance(obj, dict):
                raise TaskError(f"{path} line {n}: not a JSON object; one object per line")
            if out is None:
                out = TaskFile(path, task or _detect(obj, path, n))
                if out.task == SEQUENCE and "text_pair" in obj:
                    out.pairs = []
            _add_record(out, obj, path, n)
    if out is None or not out.texts:
        raise TaskError(f"{path}: no records; the file is empty")
    return out


def _add_record(out: TaskFile, obj: dict, path: Path, n: int) -> None:
    if out.task == SEQUENCE:
        text = obj.get("text")
        if not isinstance(text, str):
            raise TaskError(f'{path} line {n}: no "text" string; every line needs one')
        if (out.pairs is not None) != ("text_pair" in obj):
            raise TaskError(
                f'{path} line {n}: "text_pair" is on some lines and not others; give it on every '
                f"line or on none"
            )
        if out.pairs is not None:
            if not isinstance(obj["text_pair"], str):
                raise TaskError(f'{path} line {n}: "text_pair" is not a string')
            out.pairs.append(obj["text_pair"])
        if "label" not in obj:
            raise TaskError(f'{path} line {n}: no "label"; every line needs one')
        out.texts.append(text)
        out.labels.append(_label_name(obj["label"], path, n, "label"))
        return
    words, tags = obj.get("tokens"), obj.get("tags")
    if not isinstance(words, list) or not all(isinstance(w, str) and w for w in words) or not words:
        raise TaskError(f'{path} line {n}: "tokens" must be a non-empty list of non-empty strings')
    if tags is None:
        raise TaskError(f'{path} line {n}: no "tags"; every line needs one tag per token')
    if not isinstance(tags, list):
        raise TaskError(f'{path} line {n}: "tags" is not a list')
    if len(tags) != len(words):
        raise TaskError(
            f"{path} line {n}: {len(words)} tokens but {len(tags)} tags; give exactly one tag "
            f"per token"
        )
    out.texts.append(words)
    out.labels.append([_label_name(t, path, n, "tag") for t in tags])


def label_names(train: TaskFile) -> List[str]:
    """The label (or tag) names of a training file, sorted; numerically if all are integers."""
    seen = set()
    for lab in train.labels:
        seen.update(lab if train.task == TOKEN else [lab])
    names = list(seen)
    if all(s.lstrip("-").isdigit() for s in names):
        return sorted(names, key=int)
    return sorted(names)


def check_labels(f: TaskFile, names: Sequence[str], train: TaskFile) -> None:
    """Every label of ``f`` must be one of the training labels."""
    if f.task != train.task:
        raise TaskError(
            f"{f.path} is a {f.task} classification file but {train.path} is {train.task} "
            f"classification; give files of one task"
        )
    if f.task == SEQUENCE and (f.pairs is None) != (train.pairs is None):
        raise TaskError(
            f'{f.path}: "text_pair" is {"missing" if f.pairs is None else "present"} but '
            f"{train.path} {'has' if train.pairs is not None else 'has no'} pairs; give the same fields"
        )
    known = set(names)
    for i, lab in enumerate(f.labels):
        for t in lab if f.task == TOKEN else [lab]:
            if t not in known:
                raise TaskError(
                    f"{f.path} record {i + 1}: label {t!r} is not in the training labels "
                    f"({', '.join(names)}); fix it or add training examples of it"
                )


@dataclass
class Encoded:
    """Token ids of one file under one tokenizer; ``labels`` per record is an int (sequence)
    or a list of ints aligned to the tokens (token task, -100 where nothing counts);
    ``word_labels`` (token task) holds the gold tag id of every word, ``first`` the position
    of each word's first subword (-1 when truncation dropped it)."""

    input_ids: List[List[int]]
    token_type_ids: Optional[List[List[int]]]
    labels: List
    word_labels: Optional[List[List[int]]] = None
    first: Optional[List[List[int]]] = None


def encode(f: TaskFile, tokenizer, names: Sequence[str], max_len: int) -> Encoded:
    """Tokenizes ``f`` (truncating to ``max_len`` tokens) and maps labels to ids."""
    index: Dict[str, int] = {n: i for i, n in enumerate(names)}
    if f.task == SEQUENCE:
        enc = tokenizer(f.texts, f.pairs, truncation=True, max_length=max_len)
        return Encoded(
            [list(x) for x in enc["input_ids"]],
            [list(x) for x in enc["token_type_ids"]] if "token_type_ids" in enc else None,
            [index[lab] for lab in f.labels],
        )
    if not getattr(tokenizer, "is_fast", False):
        raise TaskError(
            f"{getattr(tokenizer, 'name_or_path', 'the tokenizer')}: token classification needs a "
            f"fast tokenizer (tokenizer.json) to align words to subwords"
        )
    try:
        enc = tokenizer(f.texts, is_split_into_words=True, truncation=True, max_length=max_len)
    except ValueError as e:  # byte-level BPE without a prefix space refuses split words
        raise TaskError(
            f"{getattr(tokenizer, 'name_or_path', 'the tokenizer')} cannot take words one by one "
            f"({str(e).splitlines()[0]}); set \"add_prefix_space\": true in its tokenizer_config.json"
        ) from None
    labels, words, firsts = [], [], []
    for i, tags in enumerate(f.labels):
        ids = [index[t] for t in tags]
        lab = [IGNORE] * len(enc["input_ids"][i])
        first = [-1] * len(tags)
        prev = None
        for pos, w in enumerate(enc.word_ids(i)):
            if w is not None and w != prev:
                lab[pos] = ids[w]
                first[w] = pos
            prev = w
        labels.append(lab)
        words.append(ids)
        firsts.append(first)
    return Encoded(
        [list(x) for x in enc["input_ids"]],
        [list(x) for x in enc["token_type_ids"]] if "token_type_ids" in enc else None,
        labels,
        words,
        firsts,
    )


def collate(e: Encoded, rows: Sequence[int], pad_id: int, task: str) -> Dict[str, torch.Tensor]:
    """A padded batch of the records ``rows`` (right padding)."""
    width = max(len(e.input_ids[r]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    tt = torch.zeros((len(rows), width), dtype=torch.long) if e.token_type_ids else None
    labels = (torch.full((len(rows), width), IGNORE, dtype=torch.long) if task == TOKEN
              else torch.empty(len(rows), dtype=torch.long))
    for b, r in enumerate(rows):
        n = len(e.input_ids[r])
        ids[b, :n] = torch.tensor(e.input_ids[r])
        mask[b, :n] = 1
        if tt is not None:
            tt[b, :n] = torch.tensor(e.token_type_ids[r])
        if task == TOKEN:
            labels[b, :n] = torch.tensor(e.labels[r])
        else:
            labels[b] = e.labels[r]
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if tt is not None:
        out["token_type_ids"] = tt
    return out
