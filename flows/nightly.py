"""The nightly flow: yesterday's export in, that day's partitions replaced, artifacts and the HTML
report of the 28 days to that day published.

Its date comes from the run's scheduled time, not from the clock when it happens to start, so a
run that starts late (a busy worker) or is retried the next morning still processes the right day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.artifacts import publish_nightly_artifacts, publish_nightly_report
from flows.common import JobCounts, flow_settings, input_for, run_dates


def nightly_date(scheduled: datetime, timezone: str = "Asia/Tokyo") -> date:
    """The day a run scheduled at ``scheduled`` processes: the day before, in the zone that dates
    responses (02:30 JST on 7/2 and 17:30 UTC on 7/1 both give 7/1)."""
    if scheduled.tzinfo is None or scheduled.utcoffset() is None:
        raise ValueError(f"scheduled time {scheduled} has no time zone; pass an aware datetime")
    return scheduled.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)


def scheduled_time() -> datetime:
    """When this flow run was expected to start; now when there is no flow run or no such time."""
    expected = flow_run.scheduled_start_time
    return expected if isinstance(expected, datetime) else datetime.now(UTC)


@flow(name="nightly")
def nightly(
    input_path: str,
    config: str | None = None,
    day: date | None = None,
    source_name: str | None = None,
) -> JobCounts:
    """Process one day (default: yesterday, from the scheduled time) and publish its artifacts.

    ``input_path`` may name one file per day: ``exports/nps_{date:%Y%m%d}.csv``."""
    settings = flow_settings(config)
    day = day or nightly_date(scheduled_time(), settings.source.timezone)
    path = input_for(input_path, day)
    get_run_logger().info("processing %s from %s", day, path)
    counts = run_dates(str(path), day, day, config, "nightly", source_name)
    publish_nightly_artifacts(config, day, counts)
    get_run_logger().info("report written to %s", publish_nightly_report(config, day))
    return counts
