"""The main job: one input file and a date scope in, replaced partitions and a run record out.

    stage, chunk by chunk, without the store's write lock (`pipeline.stages`):
        ingest → normalize → tokenize → classify → terms → response rows → staging area
    check that no reason code quarantined too many records (`pipeline.quarantine_limit`)
    publish, under the lock, in one transaction (`pipeline.publish`):
        replace the partitions → aggregates (NPS per day) → drivers (rolling windows)

A DuckDB file is held only while the run uses it (`Store.release_between_uses`), so other runs and
readers get in while this one classifies.

Everything streams in chunks of ``source.chunk_rows``. The model comes in as a
`SentencePredictor`, so this module never loads one itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.classify import SentencePredictor
from pipeline.contracts import DateScope, Lineage
from pipeline.errors import Stage, StoreBusyError
from pipeline.inference_cache import CachedPredictor
from pipeline.ingest import SourceInfo, chunked, describe_source, read_records
from pipeline.normalize import NORMALIZER_VERSION
from pipeline.progress import Progress, ReadProgress, no_progress
from pipeline.publish import publish
from pipeline.quarantine_limit import check_quarantine_share
from pipeline.schema import lineage_columns
from pipeline.settings import Settings
from pipeline.stages import Chunk, Component
from pipeline.stages.classify import Classify
from pipeline.stages.ingest import Validate
from pipeline.stages.normalize import Normalize
from pipeline.stages.responses import ResponseRows
from pipeline.stages.terms import Terms
from pipeline.stages.tokenize import Tokenize
from pipeline.staging import StagingArea, staging_area
from pipeline.store import Store, open_store
from pipeline.summary import RunKind, RunSummary
from pipeline.taxonomy import Taxonomy
from pipeline.tokenize import dictionary_version
from pipeline.validate import RowValidator

__all__ = ["DateScope", "RunKind", "RunSummary", "make_run_id", "run_job"]

EVERY_DATE = DateScope()  # no bounds: every date found in the input


def components(
    settings: Settings, scope: DateScope, predictor: CachedPredictor, taxonomy: Taxonomy
) -> list[Component]:
    """The stages each chunk goes through, in order."""
    return [
        Validate(RowValidator(settings.source), scope),
        Normalize(),
        Tokenize(),
        Classify(predictor, taxonomy, settings.model.batch_size, settings.model.low_confidence_below),
        Terms(),
        ResponseRows(),
    ]


def make_run_id(
    source: SourceInfo, scope: DateScope, settings: Settings, kind: RunKind, predictor: SentencePredictor
) -> str:
    """Same input, scope, settings and versions → same id, so a re-run replaces its record."""
    parts = [source.sha256, str(scope.start), str(scope.end), settings.config_hash(), kind, __version__,
             NORMALIZER_VERSION, dictionary_version(), predictor.model_version,
             predictor.taxonomy_version]  # fmt: skip
    return "run-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def run_job(
    input_path: Path,
    settings: Settings,
    predictor: SentencePredictor,
    taxonomy: Taxonomy,
    scope: DateScope = EVERY_DATE,
    kind: RunKind = "run",
    source_name: str | None = None,
    stage_listener: Callable[[str | None], None] | None = None,
    source: SourceInfo | None = None,
    store: Store | None = None,
    progress: Progress = no_progress,
) -> RunSummary:
    """Run the job over one input and return its summary; raises (after recording) on failure.

    ``source``: the input as `describe_source` already described it (and hashed it), so it is
    not read twice. ``store``: an open store to publish into (and to report from afterwards);
    else the one the settings name is opened and closed here. ``progress`` is told how far each
    stage has got (`pipeline.progress`). A run that quarantines too many records for one reason
    publishes nothing and raises `QuarantineLimitError`; one that waits for the store past
    ``store.lock_timeout`` raises `StoreBusyError` and has no runs row (it cannot write one)."""
    source = source or describe_source(input_path, settings.source)
    if predictor.taxonomy_version != taxonomy.version:
        raise ValueError(f"model taxonomy {predictor.taxonomy_version} differs from {taxonomy.version}")
    run_id = make_run_id(source, scope, settings, kind, predictor)
    lineage = Lineage(run_id, settings.config_hash(), source_name or input_path.name, NORMALIZER_VERSION,
                      dictionary_version(), predictor.model_version, taxonomy.version)  # fmt: skip
    started_at = datetime.now(UTC)
    opened = contextlib.nullcontext(store) if store is not None else open_store(settings.store)
    with opened as store, staging_area(lineage) as staging:
        store.release_between_uses()
        summary = RunSummary(run_id, kind, "failed", lineage.source_name, store.location, scope)
        summary.stage_listener, summary.progress = stage_listener, progress
        failure: Exception | None = None
        try:
            cache_store = store if settings.model.inference_cache else None
            cached = CachedPredictor(predictor, cache_store)
            stage_chunks(source, settings, components(settings, scope, cached, taxonomy), staging, summary)
            summary.predictions_computed = cached.counts.computed
            summary.predictions_reused = cached.counts.reused
            check_quarantine_share(summary, settings.source)
            publish(store, staging, scope, settings, taxonomy, summary)
            summary.status = "succeeded"
        except Exception as exc:
            failure = exc
            raise
        finally:
            if not isinstance(failure, StoreBusyError):  # else the runs table is out of reach too
                error = f"{type(failure).__name__}: {failure}" if failure else None
                _record_run(store, summary, source, lineage, started_at, error)
    return summary


def stage_chunks(
    source: SourceInfo,
    settings: Settings,
    stages: list[Component],
    staging: StagingArea,
    summary: RunSummary,
) -> None:
    """Every chunk of the input through the stages, its rows into the staging area."""
    counts = ChunkProgress(summary.progress)
    for chunk in _chunks(source, settings, summary, counts.read):
        for component in stages:
            with summary.timed(component.stage):
                chunk = component(chunk)
            counts.passed(component.stage, chunk)
        with summary.timed(Stage.WRITE):
            staging.add(chunk.rows)
        summary.rows_read += len(chunk.records)
        summary.rows_in += chunk.rows_in
        summary.rows_published += len(chunk.processed)
        summary.count_quarantined(chunk.quarantined)
        summary.count_sentences(chunk.labels)
    counts.finished()


def _chunks(
    source: SourceInfo, settings: Settings, summary: RunSummary, read: ReadProgress
) -> Iterator[Chunk]:
    """The input's records in chunks, reading timed as part of ingest."""
    records = chunked(read_records(source, settings.source, read), settings.source.chunk_rows)
    while True:
        with summary.timed(Stage.INGEST):
            batch = next(records, None)
        if batch is None:
            return
        yield Chunk(batch)


@dataclass
class ChunkProgress:
    """How far the per-chunk stages have got, told to ``progress`` as each chunk passes each stage:
    ingest in bytes read of the file's size (records of a Parquet file), classify in sentences,
    the others in records. Record and sentence totals are known once reading is over (a
    Parquet file's record total from the start)."""

    progress: Progress
    read: ReadProgress = field(default_factory=ReadProgress)
    done: Counter[Stage] = field(default_factory=Counter)

    def passed(self, stage: Stage, chunk: Chunk) -> None:
        if stage is Stage.INGEST:
            self.progress(stage, self.read.done, self.read.total, self.read.unit)
        elif stage is Stage.CLASSIFY:
            self.done[stage] += sum(len(item.sentences) for item in chunk.processed)
            self.progress(stage, self.done[stage], None, _unit(stage))
        else:
            self.done[stage] += len(chunk.records)
            records = self.read.total if self.read.unit == "records" else None
            self.progress(stage, self.done[stage], records, _unit(stage))

    def finished(self) -> None:
        """Every record is read: each stage has done its total."""
        self.progress(Stage.INGEST, self.read.done, self.read.total, self.read.unit)
        for stage, done in self.done.items():
            self.progress(stage, done, done, _unit(stage))


def _unit(stage: Stage) -> str:
    return "sentences" if stage is Stage.CLASSIFY else "records"


def _record_run(
    store: Store,
    summary: RunSummary,
    source: SourceInfo,
    lineage: Lineage,
    started_at: datetime,
    error: str | None,
) -> None:
    with store.transaction():
        store.upsert_by_key("runs", _run_row(summary, source, lineage, started_at, error))


def _run_row(
    summary: RunSummary, source: SourceInfo, lineage: Lineage, started_at: datetime, error: str | None
) -> dict[str, Any]:
    return {
        "run_id": summary.run_id,
        "kind": summary.kind,
        "status": summary.status,
        "source_name": summary.source_name,
        "source_sha256": source.sha256,
        "scope_start": summary.scope.start,
        "scope_end": summary.scope.end,
        "partitions": len(summary.partitions),
        "rows_read": summary.rows_read,
        "rows_in": summary.rows_in,
        "rows_published": summary.rows_published,
        "rows_quarantined": summary.rows_quarantined,
        "rows_out_of_scope": summary.rows_out_of_scope,
        "started_at": started_at,
        "finished_at": datetime.now(UTC),
        "seconds_by_stage": json.dumps({k: round(v, 3) for k, v in summary.seconds_by_stage.items()}),
        "pipeline_version": __version__,
        "error": error,
        "predictions_computed": summary.predictions_computed,
        "predictions_reused": summary.predictions_reused,
        "stage_times": json.dumps(
            {stage: [_utc(first), _utc(last)] for stage, (first, last) in summary.stage_times.items()}
        ),
        "low_confidence_share": summary.low_confidence_share,
    } | lineage_columns("runs", lineage)


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
