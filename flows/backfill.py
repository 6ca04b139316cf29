"""Backfill: re-process a date range as one run per date.

Each date is its own Prefect run, so the UI shows which dates failed, a failed date can be re-run
alone, and the other dates still complete; the backfill then ends Failed and names the failed
dates. Per-date runs give exactly the tables that running each date alone gives.

Where the dates run (``fan_out``):

- ``subflows`` (default): one child flow run per date, in this process, one after another.
- ``deployments``: one run of the ``process-date`` deployment per date, picked up by whatever
  serves or works that deployment (``voc serve``, or a work pool's workers on other machines).
- ``dask``: one task run per date on a Dask cluster (``prefect_dask.DaskTaskRunner``): a
  LocalCluster of ``dask.workers`` workers, or an existing scheduler at ``dask.address``.

Dates run one after another, oldest first, unless ``parallel`` is set, which needs PostgreSQL
(``store.url``): a DuckDB file takes one writer process at a time. Two things to know before
setting it. Each date classifies without the store's write lock and takes it only to publish,
so parallel dates classify at the same time and queue only for their writes (the ``runs``
table's ``stage_times`` shows it). And when one response id appears on two dates, the copy kept
is the one whose date publishes first, not the older one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, Literal, cast

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import TaskRunner
from prefect_dask import DaskTaskRunner
from pydantic import BaseModel, Field

from flows.artifacts import publish_backfill_artifact
from flows.common import DateResult, JobCounts, date_result, flow_settings, input_for, run_dates
from pipeline.job import DateScope, RunKind

FanOut = Literal["subflows", "deployments", "dask"]
PROCESS_DATE_DEPLOYMENT = "process-date/process-date"


class DaskOptions(BaseModel):
    """The Dask cluster for ``fan_out="dask"``."""

    workers: int = Field(default=2, ge=1, description="workers of the LocalCluster started for the run")
    processes: bool = Field(default=True, description="worker processes; false: threads in this process")
    address: str | None = Field(default=None, description="an existing scheduler, e.g. tcp://host:8786")

    def task_runner(self) -> TaskRunner[Any]:
        if self.address:
            return DaskTaskRunner(address=self.address)
        cluster = {"n_workers": self.workers, "threads_per_worker": 1, "processes": self.processes}
        return DaskTaskRunner(cluster_kwargs=cluster)


class BackfillFailed(RuntimeError):
    """Some dates failed; the others completed and their tables are replaced."""


@flow(name="process-date", flow_run_name="{kind}-{day}")
def process_date(
    day: date,
    input_path: str,
    config: str | None = None,
    kind: RunKind = "backfill",
    source_name: str | None = None,
) -> JobCounts:
    """One date as its own flow run (a backfill's child run, or a ``process-date`` deployment run)."""
    return run_dates(str(input_for(input_path, day)), day, day, config, kind, source_name)


@flow(name="backfill", flow_run_name="backfill-{start}-{end}")
def backfill(
    start: date,
    end: date,
    input_path: str,
    config: str | None = None,
    source_name: str | None = None,
    fan_out: FanOut = "subflows",
    dask: DaskOptions | None = None,
    parallel: bool = False,
) -> list[DateResult]:
    """Re-process ``start..end`` (inclusive) as one run per date; fails if any date failed."""
    days = DateScope(start, end).days()
    if parallel and (fan_out == "subflows" or flow_settings(config).store.url is None):
        raise ValueError("parallel dates need fan_out 'deployments' or 'dask' and a PostgreSQL store.url")
    if fan_out == "subflows":
        states = [
            process_date(day, input_path, config, "backfill", source_name, return_state=True) for day in days
        ]
        results = [date_result(day, state) for day, state in zip(days, states, strict=True)]
    elif fan_out == "deployments":

        def submit(day: date) -> PrefectFuture[DateResult]:
            return run_date_deployment.submit(day, input_path, config, source_name)

        results = [f.result() for f in _submit_in_order(submit, days, parallel)]
    else:
        runner = (dask or DaskOptions()).task_runner()
        on_dask = backfill_on_dask.with_options(task_runner=runner, flow_run_name=f"dask-{start}-{end}")
        results = on_dask(days, input_path, config, source_name, parallel)
    publish_backfill_artifact(start, end, results)
    failed = [r for r in results if r["state"] != "completed"]
    if failed:
        listed = "; ".join(f"{r['date']} ({r['message']})" for r in failed)
        raise BackfillFailed(
            f"{len(failed)} of {len(days)} dates failed: {listed}. The other dates completed; re-run a "
            "failed date alone with start and end set to it."
        )
    return results


@flow(name="backfill-dask")
def backfill_on_dask(
    days: list[date], input_path: str, config: str | None, source_name: str | None, parallel: bool
) -> list[DateResult]:
    """The dates as task runs on this flow's Dask task runner; each worker loads the model itself."""

    def submit(day: date) -> PrefectFuture[JobCounts]:
        named = run_dates.with_options(task_run_name=f"backfill-{day}")
        return named.submit(str(input_for(input_path, day)), day, day, config, "backfill", source_name)

    futures = _submit_in_order(submit, days, parallel)
    return [date_result(day, f.state) for day, f in zip(days, futures, strict=True)]


@task(task_run_name="process-date-deployment-{day}", cache_policy=NO_CACHE)
def run_date_deployment(
    day: date, input_path: str, config: str | None, source_name: str | None
) -> DateResult:
    """Start one ``process-date`` deployment run and wait for it; returns its outcome, not its error."""
    parameters = {
        "day": day.isoformat(),
        "input_path": input_path,
        "config": config,
        "source_name": source_name,
    }
    run = cast(
        FlowRun,
        run_deployment(PROCESS_DATE_DEPLOYMENT, parameters=parameters, flow_run_name=f"backfill-{day}"),
    )
    if run.state is None:
        return {
            "date": day.isoformat(),
            "state": "unknown",
            "message": f"no state for {run.id}",
            "counts": None,
        }
    return date_result(day, run.state, with_counts=False)


def _submit_in_order(
    submit: Callable[[date], PrefectFuture[Any]], days: list[date], parallel: bool
) -> list[PrefectFuture[Any]]:
    """Submit every date and wait for all; unless writes may run in parallel, each date is submitted
    only when the one before it has finished (failed or not)."""
    futures: list[PrefectFuture[Any]] = []
    for day in days:
        futures.append(submit(day))
        if not parallel:
            futures[-1].wait()
    wait(futures)
    return futures
