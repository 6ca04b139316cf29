"""What a theme is about: key phrases by class-based TF-IDF, representative and different example
sentences, its nearest taxonomy topic and whether the taxonomy already covers it."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pipeline.drivers.examples import char_bigrams, repeats
from pipeline.themes.state import Member, Theme
from pipeline.tokenize import noun_phrases, tokenize


def sentence_terms(text: str) -> set[str]:
    """Content lemmas and noun phrases (置き配, QRコード決済) of a sentence, each once."""
    tokens = tokenize(text)
    return {t.lemma for t in tokens if t.is_content} | set(noun_phrases(tokens))


def key_phrases(themes: Sequence[Theme], background: Sequence[str], count: int) -> dict[str, list[str]]:
    """Per theme, its ``count`` terms with the highest class-based TF-IDF (BERTopic's c-TF-IDF:
    a term's frequency in the theme times log(1 + average class size / its frequency over all
    classes)), the pool's unthemed sentences ``background`` forming one more class so that
    words every sentence uses rank low. A term must occur in two sentences of the theme."""
    classes = [Counter(t for m in theme.recent for t in sentence_terms(m.text)) for theme in themes]
    classes.append(Counter(t for text in background for t in sentence_terms(text)))
    overall: Counter[str] = Counter()
    for counts in classes:
        overall.update(counts)
    average = sum(overall.values()) / len(classes)
    phrases = {}
    for theme, counts in zip(themes, classes, strict=False):
        total = sum(counts.values()) or 1
        scored = [
            (-(n / total) * math.log(1 + average / overall[term]), term)
            for term, n in counts.items()
            if n >= 2
        ]
        phrases[theme.theme_id] = [term for _, term in sorted(scored)[:count]]
    return phrases


def examples(theme: Theme, limit: int) -> list[tuple[Member, float]]:
    """Up to ``limit`` members closest to the centroid, skipping near-copies of one chosen."""
    vectors = np.stack([m.vector for m in theme.recent])
    similarity = vectors @ theme.centroid
    order = sorted(range(len(theme.recent)), key=lambda i: (-similarity[i], theme.recent[i].order))
    chosen: list[tuple[Member, float]] = []
    shingles: list[frozenset[str]] = []
    for i in order:
        grams = char_bigrams(theme.recent[i].text)
        if repeats(grams, shingles):
            continue
        chosen.append((theme.recent[i], float(similarity[i])))
        shingles.append(grams)
        if len(chosen) == limit:
            break
    return chosen


@dataclass(frozen=True)
class TopicCentroids:
    """The mean vector of the pool window's sentences that mention each leaf topic."""

    topic_ids: list[str]
    centroids: NDArray[np.float32]  # [topics, H], L2-normalised

    def nearest(self, vector: NDArray[np.float32]) -> tuple[str | None, float | None]:
        if not self.topic_ids:
            return None, None
        similarity = self.centroids @ vector
        best = int(similarity.argmax())
        return self.topic_ids[best], float(similarity[best])


def topic_centroids(vectors: NDArray[np.float32], topics: Sequence[str]) -> TopicCentroids:
    """``topics``: each sentence's comma-separated leaf topics."""
    ids = sorted({t for listed in topics for t in listed.split(",") if t})
    rows = []
    for topic in ids:
        mean = vectors[[topic in listed.split(",") for listed in topics]].mean(axis=0)
        rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
    return TopicCentroids(
        ids, np.array(rows, dtype=np.float32).reshape(len(ids), vectors.shape[1] if len(vectors) else 0)
    )


def covered_share(theme: Theme) -> float:
    """Share of the theme's newest sentences that some taxonomy topic mentions."""
    return float(np.mean([m.covered for m in theme.recent]))
