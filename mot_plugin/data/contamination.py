"""Contamination check: does a training prompt share a word n-gram with an evaluation prompt?

Words are lowercased runs of letters and digits. The default n is 13, the convention of the GPT-3
and Llama contamination studies: long enough that a shared n-gram is a copied passage rather than a
common phrase. A prompt shorter than n words counts as one n-gram, so a short prompt matches only a
prompt with the same words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from mot_plugin.data.rows import DataError
from mot_plugin.jsonl import read_jsonl

DEFAULT_NGRAM = 13
_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The word n-grams of `text` (the whole word sequence when it is shorter than n)."""
    words = tuple(_WORD.findall(text.lower()))
    if len(words) <= n:
        return {words} if words else set()
    return {words[i:i + n] for i in range(len(words) - n + 1)}


class EvalNgrams:
    """The n-grams of every prompt in an evaluation file."""

    def __init__(self, prompts: Iterable[str], n: int = DEFAULT_NGRAM) -> None:
        self.n = n
        self.grams: set[tuple[str, ...]] = set()
        for prompt in prompts:
            self.grams |= ngrams(prompt, n)

    @classmethod
    def from_file(cls, path: Path, n: int = DEFAULT_NGRAM, field: str = "prompt") -> EvalNgrams:
        """Read the `field` of every row of an evaluation JSONL file."""
        if not path.is_file():
            raise DataError(f"{path}: eval file not found")
        prompts = []
        for number, row in read_jsonl(path, DataError):
            if not isinstance(row.get(field), str):
                raise DataError(f"{path}:{number}: missing field {field!r}")
            prompts.append(row[field])
        return cls(prompts, n)

    def overlaps(self, text: str) -> bool:
        """Whether `text` shares an n-gram with an evaluation prompt."""
        return not self.grams.isdisjoint(ngrams(text, self.n))
