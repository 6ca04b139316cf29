"""A date span's responses as arrays: outcome, segments, topic mentions, comments and terms.

`load_window_data` reads everything the driver rows of a batch of windows need from the store
once; the statistics then select responses with boolean masks over these arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from pipeline.contracts import BLANK_SEGMENT
from pipeline.store import Store
from pipeline.taxonomy import Taxonomy

ALL = "all"  # segment name and value of the cell that holds every response

Mask = NDArray[np.bool_]  # one entry per response (or responses × topics): selected or not


class TopicLevelName(StrEnum):
    """The drivers table's ``topic_level``."""

    LEAF = "leaf"
    PARENT = "parent"  # mentioned when any of its leaves is


@dataclass
class TopicLevel:
    """Mentions of one taxonomy level: leaves, or parents (a parent is mentioned when any leaf is)."""

    name: TopicLevelName
    ids: list[str]
    parents: list[str | None]
    mention: Mask  # responses × topics
    negative: Mask  # the topic's sentiment in that response is negative
    score: NDArray[np.float64]


@dataclass(frozen=True)
class CategoryCodes:
    """A categorical column as integer codes into ``names`` (sorted in string order)."""

    codes: NDArray[np.int64]
    names: list[str]

    @classmethod
    def of(cls, values: NDArray[Any]) -> CategoryCodes:
        levels, inverse = np.unique(values, return_inverse=True)
        names = [str(v) for v in levels]
        order = sorted(range(len(names)), key=names.__getitem__)
        recode = np.empty(len(order), dtype=np.int64)
        recode[order] = np.arange(len(order))
        return cls(recode[inverse.reshape(-1)], [names[j] for j in order])


@dataclass
class WindowData:
    """Response-level arrays for the responses of a date span."""

    ids: NDArray[Any]
    day: NDArray[np.int64]  # date ordinals
    detractor: Mask
    promoter: Mask
    has_comment: Mask
    log_chars: NDArray[np.float64]
    month: CategoryCodes
    segments: dict[str, CategoryCodes]
    levels: list[TopicLevel]
    comments: dict[str, str]  # detractors that mention a topic: their masked comment
    terms: sparse.csr_matrix  # terms × responses, 1 where the response's comment uses the term
    term_names: list[tuple[str, str]]  # (term_kind, term)
    id_rank: NDArray[np.int64]  # position of each response id in sorted order (ties in examples)
    # memos filled while a batch is computed (see drivers/terms.py and drivers/examples.py)
    seeded: dict[int, list[int]] = field(default_factory=dict)  # term → leaf columns it seeds
    bigrams: dict[str, frozenset[str]] = field(default_factory=dict)  # response id → its comment's


def load_window_data(
    store: Store, start: date, end: date, segment_names: list[str], taxonomy: Taxonomy
) -> WindowData:
    """Every response dated ``start``..``end`` (both included), in response id order."""
    rows = store.query(
        "SELECT response_id, response_date, nps_category, has_comment, comment_chars FROM responses "
        "WHERE response_date BETWEEN ? AND ? ORDER BY response_id",
        [start, end],
    )
    ids = np.array([r[0] for r in rows], dtype=object)
    index = {r[0]: i for i, r in enumerate(rows)}
    category = np.array([r[2] for r in rows], dtype=object)
    segments = _segment_values(store, start, end, segment_names, index, len(rows))
    levels = _topic_levels(store, start, end, taxonomy, index, len(rows))
    comments = dict(
        store.query(
            "SELECT response_id, comment_masked FROM responses WHERE nps_category = 'detractor' "
            "AND topics <> '' AND response_date BETWEEN ? AND ?",
            [start, end],
        )
    )
    term_matrix, term_names = _term_matrix(store, start, end, len(rows))
    days = np.array([r[1].toordinal() for r in rows], dtype=np.int64)
    return WindowData(
        ids=ids,
        day=days,
        detractor=category == "detractor",
        promoter=category == "promoter",
        has_comment=np.array([bool(r[3]) for r in rows], dtype=bool),
        log_chars=np.log1p(np.array([r[4] for r in rows], dtype=np.float64)),
        month=CategoryCodes.of(np.array([r[1].year * 12 + r[1].month for r in rows], dtype=np.int64)),
        segments={name: CategoryCodes.of(values) for name, values in segments.items()},
        levels=levels,
        comments=comments,
        terms=term_matrix,
        term_names=term_names,
        id_rank=_ranks(ids),
    )


def _segment_values(
    store: Store, start: date, end: date, segment_names: list[str], index: dict[str, int], n: int
) -> dict[str, NDArray[Any]]:
    """Each configured segment's value per response; BLANK_SEGMENT where it has none."""
    segments = {name: np.full(n, BLANK_SEGMENT, dtype=object) for name in segment_names}
    for response_id, name, value in store.query(
        "SELECT response_id, segment_name, segment_value FROM response_segments "
        "WHERE response_date BETWEEN ? AND ?",
        [start, end],
    ):
        if name in segments and response_id in index and value is not None:
            segments[name][index[response_id]] = value
    return segments


def _topic_levels(
    store: Store, start: date, end: date, taxonomy: Taxonomy, index: dict[str, int], n: int
) -> list[TopicLevel]:
    """The leaf level, and the parent level when the taxonomy has parents."""
    leaves = list(taxonomy.leaf_ids)
    parents = sorted({p for t in leaves if (p := taxonomy.parent_of(t))})
    leaf = _empty_level(TopicLevelName.LEAF, leaves, [taxonomy.parent_of(t) for t in leaves], n)
    parent = _empty_level(TopicLevelName.PARENT, parents, [None] * len(parents), n)
    leaf_col = {t: j for j, t in enumerate(leaves)}
    parent_col = {t: j for j, t in enumerate(parents)}
    for response_id, topic_id, parent_id, sentiment, score in store.query(
        "SELECT response_id, topic_id, parent_topic_id, topic_sentiment, topic_score FROM response_topics "
        "WHERE response_date BETWEEN ? AND ?",
        [start, end],
    ):
        i = index.get(response_id)
        if i is None or topic_id not in leaf_col:
            continue  # a topic of another taxonomy version
        for level, j in ((leaf, leaf_col[topic_id]), (parent, parent_col.get(parent_id))):
            if j is None:
                continue
            level.mention[i, j] = True
            level.negative[i, j] |= sentiment == "negative"
            level.score[i, j] = max(level.score[i, j], score)
    return [leaf, parent] if parents else [leaf]


def _term_matrix(
    store: Store, start: date, end: date, n: int
) -> tuple[sparse.csr_matrix, list[tuple[str, str]]]:
    """Terms × responses (1 where a response uses the term) and the (term_kind, term) of each row.

    Read as integer pairs: a window of 100,000 responses has millions of term rows."""
    distinct_terms = "SELECT DISTINCT term_kind, term FROM terms WHERE response_date BETWEEN ? AND ?"
    term_names = [(kind, term) for kind, term in store.query(f"{distinct_terms} ORDER BY 1, 2", [start, end])]
    response_i, term_j = store.query_integers(
        f"""
        WITH names AS (
            SELECT term_kind, term, row_number() OVER (ORDER BY term_kind, term) - 1 AS j
            FROM ({distinct_terms}) d
        ), ids AS (
            SELECT response_id, row_number() OVER (ORDER BY response_id) - 1 AS i  -- as load_window_data
            FROM responses WHERE response_date BETWEEN ? AND ?
        )
        SELECT ids.i, names.j FROM terms t
        JOIN ids ON ids.response_id = t.response_id
        JOIN names ON names.term_kind = t.term_kind AND names.term = t.term
        WHERE t.response_date BETWEEN ? AND ?
        """,
        [start, end] * 3,
    )
    if len(response_i) and (int(response_i.max()) >= n or int(term_j.max()) >= len(term_names)):
        raise RuntimeError("term rows do not line up with the window's responses: check both ORDER BYs")
    matrix = sparse.csr_matrix(
        (np.ones(len(response_i)), (term_j, response_i)), shape=(len(term_names), n), dtype=np.float64
    )
    return matrix, term_names


def _ranks(ids: NDArray[Any]) -> NDArray[np.int64]:
    """Rank of each id in Python's string order (the store's ORDER BY may collate differently)."""
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[sorted(range(len(ids)), key=lambda i: ids[i])] = np.arange(len(ids))
    return ranks


def _empty_level(name: TopicLevelName, ids: list[str], parents: list[str | None], n: int) -> TopicLevel:
    k = len(ids)
    return TopicLevel(
        name, ids, parents, np.zeros((n, k), dtype=bool), np.zeros((n, k), dtype=bool), np.zeros((n, k))
    )
