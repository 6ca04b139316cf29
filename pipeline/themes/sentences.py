"""The sentences theme discovery works on: keys, dates, text, keywords, topic coverage and the
stored vector of each, read from the published tables a day (or a span of days) at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.inference_cache import VECTOR_TABLE, vectors_from_bytes
from pipeline.store import Store

SentenceKey = tuple[str, int]  # (response_id, sentence_index)


@dataclass(frozen=True)
class SentenceBatch:
    """Sentences in (date, response id, sentence index) order, with their vectors."""

    keys: list[SentenceKey]
    days: NDArray[np.int64]  # response date ordinals
    texts: list[str]
    keywords: list[str]  # space-separated content lemmas (sentences.keywords)
    topics: list[str]  # comma-separated leaf topics (sentences.topics); "" when none
    vectors: NDArray[np.float32]  # [n, H], L2-normalised

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, index: NDArray[np.int64] | list[int]) -> SentenceBatch:
        index = np.asarray(index, dtype=np.int64)
        return SentenceBatch(
            [self.keys[i] for i in index],
            self.days[index],
            [self.texts[i] for i in index],
            [self.keywords[i] for i in index],
            [self.topics[i] for i in index],
            self.vectors[index],
        )

    @property
    def covered(self) -> NDArray[np.bool_]:
        return np.array([bool(t) for t in self.topics], dtype=bool)

    @classmethod
    def empty(cls, dimensions: int = 0) -> SentenceBatch:
        return cls([], np.zeros(0, dtype=np.int64), [], [], [], np.zeros((0, dimensions), dtype=np.float32))

    @classmethod
    def concat(cls, batches: list[SentenceBatch]) -> SentenceBatch:
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        return cls(
            [k for b in batches for k in b.keys],
            np.concatenate([b.days for b in batches]),
            [t for b in batches for t in b.texts],
            [k for b in batches for k in b.keywords],
            [t for b in batches for t in b.topics],
            np.concatenate([b.vectors for b in batches]),
        )


_SELECT = f"""
    SELECT s.response_date, s.response_id, s.sentence_index, s.sentence_text, s.keywords, s.topics,
           v.vector
    FROM sentences s
    JOIN {VECTOR_TABLE} v ON v.text_sha256 = s.text_sha256 AND v.model_version = ?
"""
IDS_PER_QUERY = 5000


def read_sentences(store: Store, first: date, last: date, model_version: str) -> SentenceBatch:
    """Sentences dated ``first``..``last`` that the model has a vector for."""
    rows = store.query(f"{_SELECT} WHERE s.response_date BETWEEN ? AND ?", [model_version, first, last])
    return _batch(rows)


def read_responses_sentences(store: Store, response_ids: list[str], model_version: str) -> SentenceBatch:
    """The sentences of the given responses that the model has a vector for (a few thousand ids
    per query, so a theme's members never mean reading its whole history)."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(response_ids), IDS_PER_QUERY):
        chunk = response_ids[start : start + IDS_PER_QUERY]
        rows += store.query(f"{_SELECT} WHERE s.response_id = ANY(?)", [model_version, chunk])
    return _batch(rows)


def _batch(rows: list[tuple[Any, ...]]) -> SentenceBatch:
    """Rows of `_SELECT` as a batch, sorted in Python (the two databases collate ids differently)."""
    if not rows:
        return SentenceBatch.empty()
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return SentenceBatch(
        keys=[(r[1], int(r[2])) for r in rows],
        days=np.array([r[0].toordinal() for r in rows], dtype=np.int64),
        texts=[r[3] for r in rows],
        keywords=[r[4] for r in rows],
        topics=[r[5] for r in rows],
        vectors=vectors_from_bytes([r[6] for r in rows]),
    )


def with_enough_keywords(batch: SentenceBatch, minimum: int) -> SentenceBatch:
    """Sentences with at least ``minimum`` content words: 「ありがとうございました」 and 「特になし」
    say nothing a theme could name."""
    keep = [i for i, k in enumerate(batch.keywords) if len(k.split()) >= minimum]
    return batch.take(keep)
