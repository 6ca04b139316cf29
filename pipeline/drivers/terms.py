"""Detractor terms (the detractor_terms table): terms detractors use more than promoters, scored
by weighted log-odds (pipeline/log_odds.py), with the topic that already covers each one."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.contracts import TermKind
from pipeline.drivers.load import Mask, TopicLevel, WindowData
from pipeline.log_odds import log_odds_arrays
from pipeline.settings import DriverSettings
from pipeline.taxonomy import Taxonomy

CO_MENTION_SHARE = 0.5  # a topic covers a term that at least this share of its users mention


def detractor_term_rows(
    data: WindowData,
    selected: Mask,
    cell: dict[str, Any],
    driver_settings: DriverSettings,
    z_crit: float,
    taxonomy: Taxonomy,
) -> list[dict[str, Any]]:
    """Rows (lineage columns aside) for the ``terms_per_cell`` terms of the selected responses
    with the highest z above ``z_crit``, most detractor-leaning first."""
    if driver_settings.terms_per_cell == 0 or not data.term_names:
        return []
    terms_t = data.terms
    background = terms_t @ selected.astype(np.float64)
    y_d = terms_t @ (selected & data.detractor).astype(np.float64)
    y_p = terms_t @ (selected & data.promoter).astype(np.float64)
    delta, z = log_odds_arrays(y_d, y_p, background)
    screened = np.flatnonzero(np.nan_to_num(z, nan=-np.inf) > z_crit)
    top = sorted((int(j) for j in screened), key=lambda j: (-z[j], data.term_names[j]))
    leaf = data.levels[0]
    result = []
    for rank, j in enumerate(top[: driver_settings.terms_per_cell], start=1):
        kind, term = data.term_names[j]
        used_by = terms_t.indices[terms_t.indptr[j] : terms_t.indptr[j + 1]]
        users = used_by[selected[used_by]]
        if j not in data.seeded:
            data.seeded[j] = _seeded_topics(kind, term, leaf, taxonomy)
        topic, coverage, share = _covering_topic(data.seeded[j], leaf, users)
        result.append({
            **cell, "term_kind": kind, "term": term, "rank": rank, "responses_using": int(background[j]),
            "detractor_responses": int(y_d[j]), "promoter_responses": int(y_p[j]),
            "log_odds": float(delta[j]), "z": float(z[j]), "covered_by_topic_id": topic,
            "coverage": coverage, "co_mention_share": share,
        })  # fmt: skip
    return result


def _seeded_topics(kind: str, term: str, leaf: TopicLevel, taxonomy: Taxonomy) -> list[int]:
    """Leaf columns with a seed term equal to the term (or inside a noun phrase)."""
    return [
        k for k, topic_id in enumerate(leaf.ids)
        if any(seed == term or (kind == TermKind.NOUN_PHRASE and seed in term)
               for seed in taxonomy.seed_lemmas[topic_id])
    ]  # fmt: skip


class Coverage(StrEnum):
    """How a detractor term is covered by a topic (the ``coverage`` column)."""

    SEED_TERM = "seed_term"  # the term is, or contains, one of the topic's seed terms
    CO_MENTION = "co_mention"  # most responses that use the term mention the topic
    NONE = "none"  # no topic covers it: a candidate for a new topic


def _covering_topic(
    seeded: list[int], leaf: TopicLevel, users: NDArray[np.int64]
) -> tuple[str | None, str, float | None]:
    """A topic covers a term when the term is (or contains) one of its seed terms, or when at
    least half the responses that use the term mention it."""
    mentions = leaf.mention[users].sum(axis=0) if len(users) else np.zeros(len(leaf.ids))
    shares = mentions / max(len(users), 1)
    if seeded:
        k = max(seeded, key=lambda k: (shares[k], -k))
        return leaf.ids[k], Coverage.SEED_TERM.value, float(shares[k])
    if len(users) and shares.max() >= CO_MENTION_SHARE:
        k = int(np.argmax(shares))
        return leaf.ids[k], Coverage.CO_MENTION.value, float(shares[k])
    return None, Coverage.NONE.value, float(shares.max()) if len(users) else None
