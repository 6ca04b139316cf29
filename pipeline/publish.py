"""Publishing a staged run: the run's partitions replaced in one transaction, under the store's
write lock, then the aggregates, the themes and the driver tables that depend on them.

Only this step takes the lock, so runs for different dates classify at the same time and queue
here only for the writes. Each staged chunk is checked before it is inserted: a response id that
another run already published, for a date outside this run, keeps that row, and the new copy is
quarantined instead (reason ``duplicate_response_id``, stage ``publish``), so an id never counts
twice. Nothing is inserted and then taken back.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.aggregate import refresh_aggregates
from pipeline.contracts import DateScope, Lineage, QuarantinedRow
from pipeline.drivers import refresh_drivers
from pipeline.errors import ReasonCode, Stage
from pipeline.inference_cache import CACHE_TABLE, VECTOR_TABLE
from pipeline.schema import lineage_columns, partitioned_tables, table_specs, to_arrow
from pipeline.settings import Settings
from pipeline.stages.ingest import quarantine_row
from pipeline.staging import StagingArea
from pipeline.store import Store
from pipeline.summary import RunSummary
from pipeline.taxonomy import Taxonomy
from pipeline.themes import refresh_themes

# tables whose rows belong to a response and go when its id is published elsewhere
_RESPONSE_TABLES = ("responses", "response_segments", "sentences", "response_topics", "terms")
_PREDICTION_KEY = ("model_version", "taxonomy_version")


def publish(
    store: Store,
    staging: StagingArea,
    scope: DateScope,
    settings: Settings,
    taxonomy: Taxonomy,
    summary: RunSummary,
) -> None:
    """Replace the run's partitions with its staged rows, all in one transaction."""
    lineage = staging.lineage
    with store.transaction():
        with summary.timed(Stage.PUBLISH):
            summary.partitions = sorted(set(scope.days()) | staging.dates)
            # records with no readable date belong to every run of their source, keyed by run
            store.delete_where("quarantine", "response_date IS NULL AND run_id = ?", [lineage.run_id])
            for table in partitioned_tables("response_date"):
                store.delete_partitions(table, summary.partitions)
            summary.progress(Stage.PUBLISH, 0, staging.chunk_count, "chunks")
            for number, chunk in enumerate(staging.chunks(), start=1):
                _publish_chunk(store, chunk, lineage, summary)
                summary.progress(Stage.PUBLISH, number, staging.chunk_count, "chunks")
        with summary.timed(Stage.AGGREGATE):
            summary.progress(Stage.AGGREGATE, 0, 1, "steps")  # one step: nothing finer to count
            refresh_aggregates(store, summary.partitions, settings, taxonomy, lineage)
            summary.progress(Stage.AGGREGATE, 1, 1, "steps")
        with summary.timed(Stage.THEMES):
            replayed = refresh_themes(store, summary.partitions, settings.themes, lineage, summary.progress)
        with summary.timed(Stage.DRIVERS):
            refresh_drivers(
                store, summary.partitions, settings, taxonomy, lineage, replayed, summary.progress
            )


def _publish_chunk(store: Store, chunk: dict[str, pa.Table], lineage: Lineage, summary: RunSummary) -> None:
    if "responses" in chunk:
        chunk = _quarantine_published_elsewhere(store, chunk, lineage, summary)
    if CACHE_TABLE in chunk:
        chunk[CACHE_TABLE] = _not_cached_yet(store, chunk[CACHE_TABLE], CACHE_TABLE, _PREDICTION_KEY)
    if VECTOR_TABLE in chunk:
        chunk[VECTOR_TABLE] = _not_cached_yet(store, chunk[VECTOR_TABLE], VECTOR_TABLE, ("model_version",))
    for table, rows in chunk.items():
        store.insert_arrow(table, rows)


def _quarantine_published_elsewhere(
    store: Store, chunk: dict[str, pa.Table], lineage: Lineage, summary: RunSummary
) -> dict[str, pa.Table]:
    """The chunk without the responses whose id another run published (for a date this run does
    not replace: this run's dates were cleared first), and with quarantine rows for them."""
    responses = chunk["responses"]
    found = store.query(
        "SELECT response_id, response_date, run_id FROM responses WHERE response_id = ANY(?) "
        "ORDER BY response_id, response_date",
        [responses.column("response_id").to_pylist()],
    )
    published = {response_id: (day, run_id) for response_id, day, run_id in reversed(found)}
    if not published:
        return chunk
    ids = pa.array(sorted(published))
    duplicates = responses.filter(pc.is_in(responses.column("response_id"), value_set=ids))
    rejected = [_duplicate_row(row, *published[row["response_id"]]) for row in duplicates.to_pylist()]
    stamp = lineage_columns("quarantine", lineage)
    quarantined = to_arrow(table_specs()["quarantine"], [quarantine_row(r) | stamp for r in rejected])
    kept = {
        table: data.filter(pc.invert(pc.is_in(data.column("response_id"), value_set=ids)))
        if table in _RESPONSE_TABLES
        else data
        for table, data in chunk.items()
    }
    kept["quarantine"] = pa.concat_tables([t for t in (kept.get("quarantine"), quarantined) if t is not None])
    summary.rows_published -= len(rejected)
    summary.rows_quarantined += len(rejected)
    summary.quarantine_reasons[ReasonCode.DUPLICATE_RESPONSE_ID.value] += len(rejected)
    return kept


def _duplicate_row(response: dict[str, Any], other_day: Any, other_run: str) -> QuarantinedRow:
    payload = {"score": response["score"], "comment_masked": response["comment_masked"]}
    return QuarantinedRow(
        source_row=response["source_row"],
        stage=Stage.PUBLISH,
        reason=ReasonCode.DUPLICATE_RESPONSE_ID,
        detail=f"response id already published for {other_day} by {other_run}",
        raw_payload=json.dumps(payload, ensure_ascii=False),
        response_id=response["response_id"],
        response_date=response["response_date"],
    )


def _not_cached_yet(store: Store, rows: pa.Table, table: str, versions: tuple[str, ...]) -> pa.Table:
    """Rows of a cache table (keyed by text hash and ``versions``) whose sentence no other run
    (classifying at the same time, or before vectors were stored) has stored."""
    first = rows.slice(0, 1).to_pylist()[0] if rows.num_rows else None
    if first is None:
        return rows
    same_versions = " AND ".join(f"{column} = ?" for column in versions)
    stored = store.query(
        f"SELECT text_sha256 FROM {table} WHERE {same_versions} AND text_sha256 = ANY(?)",
        [*(first[column] for column in versions), rows.column("text_sha256").to_pylist()],
    )
    if not stored:
        return rows
    known = pa.array([key for (key,) in stored])
    return rows.filter(pc.invert(pc.is_in(rows.column("text_sha256"), value_set=known)))
