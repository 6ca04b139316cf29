"""What a nightly run shows in the Prefect UI: NPS with its interval, the topics that pull it down
(with example comments), the new and rising themes, and the run's counts.

The rows are computed here from the result tables by plain functions (tested without Prefect);
`publish_nightly_artifacts` only hands them to Prefect.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import DateResult, JobCounts, flow_settings, store_task
from pipeline.html_report import build_report
from pipeline.html_report.summary import headline_markdown
from pipeline.report import detractor_drivers, nps_by_period, one_line
from pipeline.store import Store, open_store
from pipeline.theme_report import format_themes, theme_examples, window_themes

DRIVER_WINDOW_DAYS = 28
DRIVERS_SHOWN = 5
EXAMPLES_PER_DRIVER = 2


def detractor_driver_rows(store: Store, end_date: date) -> list[dict[str, Any]]:
    """The leaf topics that pull NPS down most in the 28-day window ending at ``end_date`` (from the
    ``drivers`` table; empty when no window ends that day), with example comments (PII-masked)."""
    return [
        {
            "topic_id": d["topic_id"],
            "label": d["label_ja"],
            "n": d["mentions"],
            "nps": d["nps_mentioning"],
            "impact": d["impact"],
            "impact_low": d["impact_ci_low"],
            "impact_high": d["impact_ci_high"],
            "examples": d["examples"][:EXAMPLES_PER_DRIVER],
        }
        for d in detractor_drivers(store, DRIVER_WINDOW_DAYS, None, end_date, limit=DRIVERS_SHOWN)
    ]


def nps_rows(store: Store, day: date, confidence: float = 0.95) -> list[dict[str, Any]]:
    """NPS for the day and for the 28 days ending at it, each with its interval."""
    windows = [(day.isoformat(), day), (f"{DRIVER_WINDOW_DAYS} days to {day}", _window_start(day))]
    rows = []
    for period, start in windows:
        for row in nps_by_period(store, "all", None, start, day, confidence):
            est = row["estimate"]
            rows.append(
                {
                    "period": period,
                    "responses": est.n,
                    "promoters": est.promoters,
                    "passives": est.passives,
                    "detractors": est.detractors,
                    "nps": round(est.nps, 1),
                    "ci_low": round(est.ci_low, 1),
                    "ci_high": round(est.ci_high, 1),
                    "confidence": confidence,
                }
            )
    return rows


def count_rows(counts: JobCounts) -> list[dict[str, Any]]:
    """The run's reconciliation, in = published + quarantined, then quarantined rows by reason."""
    rows: list[dict[str, Any]] = [
        {"count": "rows in", "value": counts["rows_in"]},
        {"count": "published", "value": counts["rows_published"]},
        {"count": "quarantined", "value": counts["rows_quarantined"]},
    ]
    rows += [{"count": f"quarantined: {k}", "value": v} for k, v in counts["quarantine_reasons"].items()]
    rows += [
        {"count": "sentences classified by the model", "value": counts["predictions_computed"]},
        {"count": "sentences from the inference cache", "value": counts["predictions_reused"]},
    ]
    share = counts.get("low_confidence_share")  # absent from counts of runs before it existed
    if share is not None:
        rows.append({"count": "share of sentences with a low-confidence sentiment", "value": round(share, 4)})
    return rows


def drivers_markdown(drivers: list[dict[str, Any]], day: date, confidence: float = 0.95) -> str:
    """The drivers as a table, then their example comments: what an analyst reads first."""
    start = _window_start(day)
    lines = [f"# Topics pulling NPS down, {start.isoformat()} .. {day.isoformat()}", ""]
    if not drivers:
        return "\n".join([*lines, "No topic lowers NPS in this window (or there are no responses)."])
    lines += [
        f"Impact = NPS − NPS without the topic's responses ({confidence:.0%} interval); impacts of topics "
        "mentioned together overlap and do not add up.",
        "",
        "| topic | responses | NPS | impact | interval |",
        "|---|---:|---:|---:|---|",
    ]
    for d in drivers:
        lines.append(
            f"| {d['label']} (`{d['topic_id']}`) | {d['n']} | {d['nps']:+.1f} | {d['impact']:+.1f} "
            f"| [{d['impact_low']:+.1f}, {d['impact_high']:+.1f}] |"
        )
    for d in drivers:
        if d["examples"]:
            lines += ["", f"**{d['label']}** — detractors wrote:"]
            lines += [f"- 「{one_line(e, 120)}」" for e in d["examples"]]
    return "\n".join(lines)


@store_task("artifacts-{day}")
def publish_nightly_artifacts(config: str | None, day: date, counts: JobCounts) -> None:
    """NPS, drivers and counts as artifacts; the keys stay fixed so the UI shows their history."""
    settings = flow_settings(config)
    with open_store(settings.store) as store:
        nps = nps_rows(store, day, settings.nps.confidence)
        drivers = detractor_driver_rows(store, day)
        themes = themes_markdown(store, day)
    create_table_artifact(nps, key="nightly-nps", description=f"NPS for {day} and the 28 days to it")
    create_markdown_artifact(
        themes, key="nightly-themes", description=f"New and rising themes, 28 days to {day}"
    )
    markdown = drivers_markdown(drivers, day, settings.nps.confidence)
    create_markdown_artifact(markdown, key="nightly-drivers", description=f"Top drivers, 28 days to {day}")
    create_table_artifact(count_rows(counts), key="nightly-counts", description=f"Rows of {day}")


@store_task("report-{day}")
def publish_nightly_report(config: str | None, day: date) -> str:
    """The HTML report of the 28 days to ``day``, and an artifact with its headline and path."""
    settings = flow_settings(config)
    with open_store(settings.store) as store:
        data, written = build_report(store, settings, DRIVER_WINDOW_DAYS, day)
    create_markdown_artifact(
        headline_markdown(data, written[0]), key="nightly-report", description=f"NPS report, 28 days to {day}"
    )
    return str(written[0])


def themes_markdown(store: Store, day: date) -> str:
    """New and rising themes of the 28 days to ``day`` (all responses), with example sentences."""
    rows = window_themes(store, DRIVER_WINDOW_DAYS, None, day)
    title = f"## New and rising themes, {DRIVER_WINDOW_DAYS} days to {day}\n\n"
    if not rows:
        return title + "No theme is new or rising in this window."
    examples = theme_examples(store, [r["theme_id"] for r in rows], EXAMPLES_PER_DRIVER)
    return title + "```\n" + format_themes(rows, examples) + "\n```"


def backfill_rows(results: list[DateResult]) -> list[dict[str, Any]]:
    """One row per date: its state and counts, or why it failed."""
    rows = []
    for r in results:
        counts = r["counts"]
        rows.append(
            {
                "date": r["date"],
                "state": r["state"],
                "rows_in": counts["rows_in"] if counts else None,
                "published": counts["rows_published"] if counts else None,
                "quarantined": counts["rows_quarantined"] if counts else None,
                "from_cache": counts["predictions_reused"] if counts else None,
                "low_confidence_share": counts.get("low_confidence_share") if counts else None,
                "message": r["message"] or "",
            }
        )
    return rows


def publish_backfill_artifact(start: date, end: date, results: list[DateResult]) -> None:
    """The per-date table an analyst checks first: which dates to re-run."""
    failed = sum(r["state"] != "completed" for r in results)
    description = f"Backfill {start}..{end}: {len(results) - failed} completed, {failed} not"
    create_table_artifact(backfill_rows(results), key="backfill-dates", description=description)


def _window_start(day: date) -> date:
    return day - timedelta(days=DRIVER_WINDOW_DAYS - 1)
