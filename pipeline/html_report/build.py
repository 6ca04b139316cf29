"""One entry point for `voc report` and the nightly flow: gather the numbers, then write the page
or the chart images."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pipeline.html_report.data import Period, ReportData, gather_report
from pipeline.html_report.images import write_chart_images
from pipeline.html_report.page import write_report
from pipeline.settings import Settings, check_segment, check_window
from pipeline.store import Store

ReportFormat = Literal["html", "png", "svg"]


def default_report_path(settings: Settings, data: ReportData, report_format: ReportFormat) -> Path:
    """reports/nps-28d-2026-10-31.html, or the folder reports/nps-28d-2026-10-31/ for images."""
    name = f"nps-{data.window_days}d-{data.headline.end.isoformat()}"
    if data.segment:
        name += f"-{data.segment}"
    folder = settings.store.reports_folder
    return folder / f"{name}.html" if report_format == "html" else folder / name


def build_report(
    store: Store,
    settings: Settings,
    window: int,
    end: date | None = None,
    segment: str | None = None,
    period: Period = "week",
    report_format: ReportFormat = "html",
    out: Path | None = None,
) -> tuple[ReportData, list[Path]]:
    """The report for ``window`` days to ``end`` (default the latest date): the HTML file, or one
    image per chart in the folder ``out``. Returns the numbers and the files written."""
    check_window(settings, window)
    check_segment(settings, segment)
    segments = list(settings.source.segments)
    data = gather_report(store, window, end, segment, period, settings.nps.confidence,
                         segments[0] if segments else None)  # fmt: skip
    out = out or default_report_path(settings, data, report_format)
    if report_format == "html":
        return data, [write_report(data, store.location, out)]
    return data, write_chart_images(data, out, report_format)
