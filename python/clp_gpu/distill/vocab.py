"""Student token ids → teacher token ids, by token string.

A BiStil student's vocabulary is the teacher's, trimmed (``clp-gpu trim``): every student
token string is a teacher token string, usually under another id. Batches are tokenized by the
student's tokenizer and mapped through this table to the ids the teacher was trained on.
"""

from __future__ import annotations

from typing import Dict, Mapping

import torch


class VocabError(ValueError):
    """The student's vocabulary is not within the teacher's."""


def vocab_map_from_vocabs(
    student_vocab: Mapping[str, int], teacher_vocab: Mapping[str, int], student_name: str = "student",
    teacher_name: str = "teacher",
) -> torch.Tensor:
    """A LongTensor ``m`` with ``m[student_id] = teacher_id`` for every token string of the
    student (ids the student's vocabulary skips map to -1). Raises VocabError (one line) when
    a student token is missing from the teacher."""
    if not student_vocab:
        raise VocabError(f"{student_name} has an empty vocabulary")
    missing = [(tok, i) for tok, i in student_vocab.items() if tok not in teacher_vocab]
    if missing:
        missing.sort(key=lambda x: x[1])
        tok, i = missing[0]
        raise VocabError(
            f"{len(missing)} of {len(student_vocab)} tokens of {student_name} are not in the "
            f"vocabulary of {teacher_name} (first: {tok!r}, id {i}); the student must be made "
            f"from this teacher by `clp-gpu trim` (its vocabulary a subset of the teacher's)"
        )
    size = max(student_vocab.values()) + 1
    table = torch.full((size,), -1, dtype=torch.long)
    for tok, i in student_vocab.items():
        table[i] = teacher_vocab[tok]
    return table


def vocab_map(student_tokenizer, teacher_tokenizer, student_name: str = "student",
              teacher_name: str = "teacher") -> torch.Tensor:
    """:func:`vocab_map_from_vocabs` of two transformers tokenizers (added tokens included)."""
    return vocab_map_from_vocabs(
        student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab(), student_name, teacher_name
    )


def to_teacher_ids(student_ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Maps a tensor of student ids through ``table``; raises VocabError on an id the table
    does not cover (a token the student's tokenizer does not list)."""
    if student_ids.numel() and int(student_ids.max()) >= table.numel():
        raise VocabError(f"student id {int(student_ids.max())} is beyond the vocabulary map")
    out = table.to(student_ids.device)[student_ids]
    if out.numel() and bool((out < 0).any()):
        bad = int(student_ids[out < 0][0])
        raise VocabError(f"student id {bad} has no token string in the student's tokenizer")
    return out


def invert(table: torch.Tensor) -> Dict[int, int]:
    """teacher id → student id for the mapped tokens."""
    return {int(t): s for s, t in enumerate(table.tolist()) if t >= 0}
