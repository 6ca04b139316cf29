"""Serve the deployments from this process (``voc serve``), without a work pool.

- ``nightly/nightly``: every day at 02:30 Asia/Tokyo, processing the day before;
- ``backfill/backfill``: on demand, one run at a time (a second backfill waits in the queue);
- ``process-date/process-date``: one date, the unit a backfill with ``fan_out="deployments"`` runs;
- ``train/train``: on demand.

For several machines use ``prefect.yaml`` with a work pool instead (see the README).
"""

from __future__ import annotations

from pathlib import Path

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from flows.backfill import backfill, process_date
from flows.common import flow_settings
from flows.nightly import nightly
from flows.train import train

NIGHTLY_CRON = "30 2 * * *"
NIGHTLY_TIMEZONE = "Asia/Tokyo"


def build_deployments(input_path: str, config: str | None = None) -> list[RunnerDeployment]:
    """The four deployments, with the export and the config as default parameters.

    Paths are made absolute: flow runs start in their own processes, maybe from another folder."""
    flow_settings(config)  # a bad config fails now, not at 02:30
    defaults = {"input_path": str(Path(input_path).expanduser().absolute()), "config": _absolute(config)}
    nightly_cron = Cron(NIGHTLY_CRON, timezone=NIGHTLY_TIMEZONE)
    deployments = [
        nightly.to_deployment(
            name="nightly",
            schedules=[nightly_cron],
            parameters=defaults,
            description="Yesterday (from the scheduled time): replace its tables, publish artifacts.",
        ),
        backfill.to_deployment(
            name="backfill",
            concurrency_limit=1,
            parameters=defaults,
            description="Re-process start..end (inclusive), one run per date. One backfill at a time.",
        ),
        process_date.to_deployment(name="process-date", parameters=defaults, description="One date."),
        train.to_deployment(name="train", parameters={"config": defaults["config"]}, description="Training."),
    ]
    return [_built(d) for d in deployments]


def serve_deployments(input_path: str, config: str | None = None) -> None:
    """Register the deployments and run their flow runs until interrupted (Ctrl-C pauses the schedule)."""
    serve(*build_deployments(input_path, config))


def _built(deployment: object) -> RunnerDeployment:
    """`to_deployment` returns a coroutine only when called from async code."""
    if not isinstance(deployment, RunnerDeployment):
        raise TypeError("build_deployments must be called from synchronous code")
    return deployment


def _absolute(config: str | None) -> str | None:
    return str(Path(config).expanduser().absolute()) if config else None
