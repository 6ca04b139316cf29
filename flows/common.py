"""What the flows share: settings from a config path, the model once per process, and the one task
that runs the job.

Tasks take paths, dates and ids, never models, DataFrames or store connections: those do not
serialise to a Dask worker or a Prefect result, and they would make task cache keys meaningless.
Each task loads what it needs itself (the model from the on-disk cache, once per process).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, TypedDict

import duckdb
from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from pipeline.classify import SentencePredictor
from pipeline.errors import StoreBusyError
from pipeline.job import DateScope, RunKind, RunSummary, run_job
from pipeline.progress import LogLines
from pipeline.settings import ModelSettings, Settings, TaxonomySettings, load_settings
from pipeline.taxonomy import Taxonomy

# seconds before the first and the second retry of a task whose I/O failed transiently
RETRY_DELAYS: list[float] = [10, 60]
_PERMANENT_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


class JobCounts(TypedDict):
    """What a task returns about one run of the job: small, serialisable, shown in the UI."""

    run_id: str
    status: str
    dates: list[str]
    rows_in: int
    rows_published: int
    rows_quarantined: int
    quarantine_reasons: dict[str, int]
    predictions_computed: int  # distinct sentences the model encoded
    predictions_reused: int  # ... and those served from the inference cache instead
    low_confidence_share: float | None  # of the sentences classified (pipeline/classify.py)


class DateResult(TypedDict):
    """One date of a backfill: its final Prefect state and, when it completed here, its counts."""

    date: str
    state: str  # completed, failed, crashed, cancelled…
    message: str | None
    counts: JobCounts | None


def date_result(day: date, state: State[Any], with_counts: bool = True) -> DateResult:
    """The outcome of one date's run from its final state; counts only from a run in this process
    (a deployment run's result lives in its own process)."""
    completed = state.is_completed()
    return {
        "date": day.isoformat(),
        "state": state.type.value.lower(),
        "message": None if completed else state.message,
        "counts": state.result() if completed and with_counts else None,
    }


def flow_settings(config: str | None) -> Settings:
    """Settings from a YAML path (None: ``$VOC_CONFIG`` or ``configs/pipeline.yaml``) plus env overrides.

    Flows receive the path, not a Settings object, so a deployment's parameters stay plain text."""
    return load_settings(Path(config) if config else None)


def input_for(template: str, day: date) -> Path:
    """The export that holds ``day``: ``exports/nps_{date:%Y%m%d}.csv`` names one file per day;
    a path without ``{date`` is one export read for every date."""
    return Path(template.format(date=day)) if "{date" in template else Path(template)


_model_lock = threading.Lock()


def get_model(settings: Settings) -> tuple[Taxonomy, SentencePredictor]:
    """The taxonomy and model the settings name, loaded once per process (tests replace this)."""
    # keyed by what loading reads: runs that differ only in batch size or cache use share a model
    loading = settings.model.model_copy(update={"batch_size": 1, "inference_cache": True})
    with _model_lock:
        return _load_model(loading, settings.taxonomy.path)


@functools.cache
def _load_model(model: ModelSettings, taxonomy_path: Path) -> tuple[Taxonomy, SentencePredictor]:
    from models.registry import load_configured_model

    return load_configured_model(Settings(model=model, taxonomy=TaxonomySettings(path=taxonomy_path)))


def is_transient(exc: BaseException) -> bool:
    """I/O that a later try may get through: a store another process held past store.lock_timeout,
    a dropped database connection, a network file system hiccup. A missing file or bad data is not."""
    for cause in _causes(exc):
        if isinstance(cause, duckdb.IOException | StoreBusyError):
            return True
        if isinstance(cause, OSError) and not isinstance(cause, _PERMANENT_OS_ERRORS):
            return True
        psycopg = sys.modules.get("psycopg")  # only loaded when the store is PostgreSQL
        if psycopg is not None and isinstance(cause, psycopg.OperationalError):
            return True
    return False


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The error and what it was raised from (``raise … from``), not what it merely interrupted."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


def retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what `is_transient` calls transient: a bug or bad data fails the same way again."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_transient(error)


def store_task(run_name: str) -> Any:
    """A task that touches the store: retried on transient errors only (a busy store, a dropped
    connection), never cached (its result lives in the store, not in Prefect)."""
    return task(
        task_run_name=run_name,
        retries=len(RETRY_DELAYS),
        retry_delay_seconds=RETRY_DELAYS,
        retry_condition_fn=retry_if_transient,
        cache_policy=NO_CACHE,
    )


@store_task("{kind} {start}..{end}")
def run_dates(
    input_path: str,
    start: date,
    end: date,
    config: str | None = None,
    kind: RunKind = "backfill",
    source_name: str | None = None,
) -> JobCounts:
    """Run the job over ``start..end`` of one export. Retrying is safe: a run replaces its dates in
    one transaction, so a second try leaves exactly what one successful try leaves."""
    settings = flow_settings(config)
    taxonomy, model = get_model(settings)
    progress = LogLines(get_run_logger().info)  # a line every 10 s in the task's run log
    summary = run_job(Path(input_path), settings, model, taxonomy, DateScope(start, end), kind, source_name,
                      progress=progress)  # fmt: skip
    return job_counts(summary)


def job_counts(summary: RunSummary) -> JobCounts:
    return {
        "run_id": summary.run_id,
        "status": summary.status,
        "dates": [d.isoformat() for d in summary.partitions],
        "rows_in": summary.rows_in,
        "rows_published": summary.rows_published,
        "rows_quarantined": summary.rows_quarantined,
        "quarantine_reasons": dict(sorted(summary.quarantine_reasons.items())),
        "predictions_computed": summary.predictions_computed,
        "predictions_reused": summary.predictions_reused,
        "low_confidence_share": summary.low_confidence_share,
    }
