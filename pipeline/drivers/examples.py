"""Example detractor comments of a driver (the driver_examples table): the clearest mentions of
the topic, each different from the ones already chosen."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

from pipeline.drivers.load import Mask, TopicLevel, WindowData

SIMILAR = 0.5  # character-bigram Jaccard above which two example comments count as the same point


def choose_examples(data: WindowData, candidates: Mask, level: TopicLevel, k: int, limit: int) -> list[int]:
    """Up to ``limit`` detractor comments: the clearest mentions first (negative about the topic,
    highest topic score), skipping any too similar to one already chosen."""
    if limit == 0:
        return []
    rows = np.flatnonzero(candidates)
    # np.lexsort sorts by its last key first: negative about the topic, then score, then id
    order = rows[np.lexsort((data.id_rank[rows], -level.score[rows, k], ~level.negative[rows, k]))]
    chosen: list[int] = []
    shingles: list[frozenset[str]] = []
    for i in order:
        grams = _bigrams(data, data.ids[i])
        if not grams:
            continue
        if repeats(grams, shingles):
            continue
        chosen.append(int(i))
        shingles.append(grams)
        if len(chosen) == limit:
            break
    return chosen


def example_rows(
    data: WindowData, chosen: list[int], cell: dict[str, Any], topic_id: str
) -> list[dict[str, Any]]:
    """driver_examples rows (lineage columns aside) for the responses ``chosen``, in rank order."""
    return [
        {
            **cell,
            "topic_id": topic_id,
            "example_rank": rank,
            "response_id": data.ids[i],
            "response_date": date.fromordinal(int(data.day[i])),
            "comment_masked": data.comments.get(data.ids[i], ""),
        }
        for rank, i in enumerate(chosen, start=1)
    ]


def _bigrams(data: WindowData, response_id: str) -> frozenset[str]:
    """The response's comment as a set of character bigrams, made when first asked for: only the
    few comments examined as examples ever need one."""
    grams = data.bigrams.get(response_id)
    if grams is None:
        text = data.comments.get(response_id)
        grams = frozenset() if text is None else char_bigrams(text)
        data.bigrams[response_id] = grams
    return grams


def char_bigrams(text: str) -> frozenset[str]:
    """A text as its set of character bigrams (a one-character text: that character)."""
    return frozenset(text[j : j + 2] for j in range(max(len(text) - 1, 1)))


def repeats(grams: frozenset[str], chosen: list[frozenset[str]]) -> bool:
    """Whether a candidate example says what one already chosen says (bigram Jaccard > SIMILAR)."""
    return any(len(grams & other) / max(len(grams | other), 1) > SIMILAR for other in chosen)
