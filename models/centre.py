"""The centre of a model's sentence vectors, which theme discovery subtracts before comparing.

Sentence encoders such as E5 put every sentence in a narrow cone: any two survey sentences have
a cosine near 0.85, and paraphrases near 0.95, so a similarity threshold on the raw vectors
would hinge on the third decimal. Subtracting the mean vector of ordinary survey sentences and
normalising again spreads them out (unrelated sentences near 0, paraphrases 0.6-0.8), which is
what the clustering and its thresholds (``themes.*_similarity``) are written for.

The mean is taken over a fixed, sorted selection of the project's own labelled sentences
(``data/labelled``), embedded once per model version and kept in the model cache, so a model
gives the same centre on every run. Without those files (an installed copy outside a checkout)
the centre is the zero vector: plain cosines.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REFERENCE_FILES = tuple(
    Path(__file__).resolve().parents[1] / "data" / "labelled" / name
    for name in ("sentiment_train.jsonl", "topics_train.jsonl")
)
REFERENCE_SENTENCES = 400  # an evenly spaced selection: the mean settles well before this


def reference_sentences() -> list[str]:
    """Every distinct labelled text, sorted, thinned to about ``REFERENCE_SENTENCES``."""
    texts: set[str] = set()
    for path in REFERENCE_FILES:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    texts.add(json.loads(line)["text"])
    ordered = sorted(texts)
    step = max(1, len(ordered) // REFERENCE_SENTENCES)
    return ordered[::step]


def vector_centre(
    embed: Callable[[Sequence[str]], np.ndarray], cache_file: Path, dimensions: int
) -> np.ndarray:
    """The mean of the reference sentences' vectors, from ``cache_file`` when it exists."""
    if cache_file.exists():
        return np.load(cache_file)
    texts = reference_sentences()
    if not texts:
        return np.zeros(dimensions, dtype=np.float32)
    centre = embed(texts).mean(axis=0).astype(np.float32)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_file.with_name(f".{cache_file.name}.{id(centre)}.npy")
    np.save(partial, centre)
    partial.replace(cache_file)
    return centre


def centred(vectors: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Vectors minus the centre, L2-normalised again."""
    shifted = vectors - centre
    norms = np.linalg.norm(shifted, axis=1, keepdims=True)
    return (shifted / np.where(norms > 0, norms, 1.0)).astype(np.float32)
