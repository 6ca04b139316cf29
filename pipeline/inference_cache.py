"""Predictions reused instead of recomputed: per run in memory, across runs in the store.

A sentence's probabilities depend only on its normalised text, the model and the taxonomy, so
they are kept in the ``inference_cache`` table keyed by (SHA-256 of the text, model version,
taxonomy version). A backfill over dates already classified by the same model reads them back
instead of running the encoder; a new model or taxonomy version misses the cache and computes
exactly the sentences it must. Within a run, a bounded in-memory layer classifies a sentence
that repeats across chunks (「特になし」, 「ありがとうございました」) once.

Probabilities are stored as exact doubles, so a cached prediction gives the same labels and the
same numbers as the run that computed it.

The sentence vectors the heads were applied to go to ``sentence_vectors``, keyed by (text hash,
model version) and stored whether or not the prediction cache is on: theme discovery
(`pipeline.themes`) clusters them after publishing, so no run encodes a sentence twice. A
prediction counts as cached only when its vector is stored too.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.classify import SentencePredictor
from pipeline.contracts import Predictions
from pipeline.store import Store

CACHE_TABLE = "inference_cache"
VECTOR_TABLE = "sentence_vectors"
_VECTOR_DTYPE = np.dtype("<f2")  # half precision: 768 bytes for a 384-dimensional vector
# about 200 bytes a sentence with 20 topics: 50,000 sentences stay well under 50 MB
MEMORY_ENTRIES = 50_000


@dataclass
class CacheCounts:
    computed: int = 0  # sentences the model encoded
    from_store: int = 0  # read back from the inference_cache table
    from_memory: int = 0  # repeated earlier in the same run

    @property
    def reused(self) -> int:
        return self.from_store + self.from_memory


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vector_bytes(vector: np.ndarray) -> bytes:
    """A sentence vector as stored in ``sentence_vectors.vector``."""
    return np.asarray(vector, dtype=_VECTOR_DTYPE).tobytes()


def vectors_from_bytes(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored vectors back as a float32 matrix, one row per blob, each L2-normalised again
    (half precision rounds the norm)."""
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    matrix = np.frombuffer(b"".join(bytes(b) for b in blobs), dtype=_VECTOR_DTYPE).astype(np.float32)
    matrix = matrix.reshape(len(blobs), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


class CachedPredictor:
    """A `SentencePredictor` that asks the wrapped model only for sentences it has not seen.

    ``store`` None keeps the in-memory layer only (``model.inference_cache: false``). The store
    is only read: new predictions wait in `take_rows` for the caller to stage and publish with
    the run's other rows, so classifying needs no write lock and a failed run leaves no rows.
    """

    def __init__(
        self,
        predictor: SentencePredictor,
        store: Store | None,
        memory_entries: int = MEMORY_ENTRIES,
    ) -> None:
        self.predictor = predictor
        self.store = store
        self.memory_entries = memory_entries
        self.counts = CacheCounts()
        self._memory: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._heads: tuple[tuple[str, ...], np.ndarray] | None = None
        self._new: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._new_vectors: dict[str, np.ndarray] = {}

    @property
    def model_version(self) -> str:
        return self.predictor.model_version

    @property
    def taxonomy_version(self) -> str:
        return self.predictor.taxonomy_version

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> Predictions:
        keys = [text_key(t) for t in texts]
        found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key in dict.fromkeys(keys):
            if key in self._memory:
                self._memory.move_to_end(key)
                found[key] = self._memory[key]
                self.counts.from_memory += 1
        if self.store is not None:
            stored = self._read(self.store, [k for k in dict.fromkeys(keys) if k not in found])
            self.counts.from_store += len(stored)
            found.update(stored)
            self._remember(stored)
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        if missing or self._heads is None:
            predicted = self.predictor.predict(list(missing.values()), batch_size)
            self._heads = (tuple(predicted.topic_ids), np.asarray(predicted.topic_threshold))
            computed = {
                k: (np.asarray(predicted.sentiment[i]), np.asarray(predicted.topics[i]))
                for i, k in enumerate(missing)
            }
            self.counts.computed += len(computed)
            if self.store is not None:
                self._new.update(computed)
            if predicted.vectors is not None:
                self._new_vectors.update((k, predicted.vectors[i]) for i, k in enumerate(missing))
            found.update(computed)
            self._remember(computed)
        topic_ids, threshold = self._heads
        sentiment = np.array([found[k][0] for k in keys], dtype=float).reshape(len(keys), 3)
        topics = np.array([found[k][1] for k in keys], dtype=float).reshape(len(keys), len(topic_ids))
        return Predictions(sentiment, topics, topic_ids, threshold)

    def _remember(self, entries: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        for key, value in entries.items():
            self._memory[key] = value
            self._memory.move_to_end(key)
        while len(self._memory) > self.memory_entries:
            self._memory.popitem(last=False)

    def _read(self, store: Store, keys: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if not keys:
            return {}
        rows = store.query(
            f"""
            SELECT c.text_sha256, c.p_negative, c.p_neutral, c.p_positive, c.topic_probabilities
            FROM {CACHE_TABLE} c
            JOIN {VECTOR_TABLE} v ON v.text_sha256 = c.text_sha256 AND v.model_version = c.model_version
            WHERE c.model_version = ? AND c.taxonomy_version = ? AND c.text_sha256 = ANY(?)
            """,
            [self.model_version, self.taxonomy_version, keys],
        )
        return {
            key: (np.array([neg, neu, pos], dtype=float), np.array(json.loads(topics), dtype=float))
            for key, neg, neu, pos, topics in rows
        }

    def take_rows(self) -> dict[str, list[dict[str, Any]]]:
        """``inference_cache`` and ``sentence_vectors`` rows for what was computed since the last
        call, by table."""
        vectors = [
            {"text_sha256": key, "model_version": self.model_version, "vector": vector_bytes(vector)}
            for key, vector in self._new_vectors.items()
        ]
        self._new_vectors = {}
        return {CACHE_TABLE: self._prediction_rows(), VECTOR_TABLE: vectors}

    def _prediction_rows(self) -> list[dict[str, Any]]:
        rows = [
            {
                "text_sha256": key,
                "model_version": self.model_version,
                "taxonomy_version": self.taxonomy_version,
                "p_negative": float(sentiment[0]),
                "p_neutral": float(sentiment[1]),
                "p_positive": float(sentiment[2]),
                # repr of a double round-trips exactly through JSON
                "topic_probabilities": json.dumps([float(p) for p in topics]),
            }
            for key, (sentiment, topics) in self._new.items()
        ]
        self._new = {}
        return rows
