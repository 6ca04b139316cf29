"""A deterministic stand-in for the model, for fast tests of the job and the roll-up rules.

It scores sentences by a few Japanese cue words and assigns topics by the taxonomy's seed terms,
so tests can state exactly which labels a sentence gets. Its sentence vectors are hashed bags of
lemmas: sentences that share their content words lie close together, as theme discovery expects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from pipeline.contracts import Predictions
from pipeline.taxonomy import Taxonomy
from pipeline.tokenize import tokenize

VECTOR_DIMENSIONS = 512
NEGATIVE_CUES = ("遅い", "遅れ", "高い", "最悪", "ない", "困", "二重", "狭い", "不満")
POSITIVE_CUES = ("親切", "良い", "良かった", "最高", "丁寧", "満足", "便利", "ありがと")


class CuePredictor:
    model_version = "cue-test-1"

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.taxonomy_version = taxonomy.version
        self.calls: list[int] = []

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> Predictions:
        self.calls.append(len(texts))
        sentiment = np.zeros((len(texts), 3))
        topics = np.zeros((len(texts), len(self.taxonomy.leaf_ids)))
        for i, text in enumerate(texts):
            negative = sum(cue in text for cue in NEGATIVE_CUES)
            positive = sum(cue in text for cue in POSITIVE_CUES)
            scores = np.array([negative, 0.5, positive], dtype=float)
            sentiment[i] = np.exp(scores) / np.exp(scores).sum()
            lemmas = {t.lemma for t in tokenize(text)}
            for j, topic in enumerate(self.taxonomy.leaf_ids):
                topics[i, j] = 0.9 if lemmas & self.taxonomy.seed_lemmas[topic] else 0.1
        threshold = np.full(len(self.taxonomy.leaf_ids), 0.5)
        vectors = (
            np.stack([lemma_vector(text) for text in texts]) if texts else np.zeros((0, VECTOR_DIMENSIONS))
        )
        return Predictions(sentiment, topics, self.taxonomy.leaf_ids, threshold, vectors)


def lemma_vector(text: str) -> np.ndarray:
    """Each content lemma adds 1 to a dimension chosen by its hash; L2-normalised (a unit vector
    of its own for text without content words)."""
    vector = np.zeros(VECTOR_DIMENSIONS)
    for token in tokenize(text):
        if token.is_content:
            vector[int.from_bytes(hashlib.sha256(token.lemma.encode()).digest()[:2]) % VECTOR_DIMENSIONS] += (
                1.0
            )
    if not vector.any():
        vector[int.from_bytes(hashlib.sha256(text.encode()).digest()[:2]) % VECTOR_DIMENSIONS] = 1.0
    return vector / np.linalg.norm(vector)
