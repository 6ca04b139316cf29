"""Aggregates a run refreshes after publishing its partitions: the taxonomy's ``topics`` rows and
NPS per date and segment value (``nps_daily``), computed from the published rows."""

from __future__ import annotations

from datetime import date
from typing import Any

from pipeline.contracts import BLANK_SEGMENT, Lineage
from pipeline.nps import CI_METHOD, nps_count_columns, nps_estimate
from pipeline.schema import lineage_columns
from pipeline.settings import Settings
from pipeline.store import Store
from pipeline.taxonomy import Taxonomy


def topic_rows(taxonomy: Taxonomy) -> list[dict[str, Any]]:
    leaves = set(taxonomy.leaf_ids)
    return [
        {
            "taxonomy_version": taxonomy.version,
            "topic_id": t.id,
            "parent_topic_id": t.parent,
            "is_leaf": t.id in leaves,
            "label_ja": t.label_ja,
            "label_en": t.label_en,
            "description": t.description,
            "seed_terms": " ".join(sorted(taxonomy.seed_lemmas.get(t.id, ()))),
        }
        for t in taxonomy.topics
    ]


def refresh_aggregates(
    store: Store, partitions: list[date], settings: Settings, taxonomy: Taxonomy, lineage: Lineage
) -> None:
    store.delete_partitions("topics", [taxonomy.version])
    store.insert("topics", topic_rows(taxonomy))
    store.insert("nps_daily", nps_daily_rows(store, partitions, settings, lineage))


def nps_daily_rows(
    store: Store, partitions: list[date], settings: Settings, lineage: Lineage
) -> list[dict[str, Any]]:
    """NPS per date for all responses and per segment value, from the published rows."""
    if not partitions:
        return []
    counts = store.query(
        f"""
        WITH scoped AS (
            SELECT response_id, response_date, nps_category FROM responses
            WHERE response_date = ANY(?)
        ), cells AS (
            SELECT response_date, 'all' AS segment_name, 'all' AS segment_value, nps_category FROM scoped
            UNION ALL
            SELECT s.response_date, g.segment_name, coalesce(g.segment_value, ?), s.nps_category
            FROM scoped s JOIN response_segments g USING (response_id)
        )
        SELECT response_date, segment_name, segment_value, {nps_count_columns()}
        FROM cells GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
        [partitions, BLANK_SEGMENT],
    )
    stamp = lineage_columns("nps_daily", lineage)
    return [
        _nps_row(day, name, value, nps_estimate(promoters, passives, detractors, settings.nps.confidence))
        | stamp
        for day, name, value, promoters, passives, detractors in counts
    ]


def _nps_row(day: date, segment_name: str, segment_value: str, estimate: Any) -> dict[str, Any]:
    return {
        "response_date": day,
        "segment_name": segment_name,
        "segment_value": segment_value,
        "responses": estimate.n,
        "promoters": estimate.promoters,
        "passives": estimate.passives,
        "detractors": estimate.detractors,
        "nps": estimate.nps,
        "nps_se": estimate.se,
        "nps_ci_low": estimate.ci_low,
        "nps_ci_high": estimate.ci_high,
        "ci_method": CI_METHOD,
    }
