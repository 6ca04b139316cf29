"""What the `voc` commands share about their output: ``--format`` for the summary tables and
``--progress`` for long runs. Tables go to stdout and progress to stderr, so a table piped
elsewhere stays clean while a terminal still shows how a run is getting on."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Literal

from pipeline.progress import LOG_EVERY_SECONDS, PROGRESS_MODES, Progress, progress_reporter
from pipeline.settings import Settings
from pipeline.table_output import TABLE_FORMATS, Row, table_text, tables_json

if TYPE_CHECKING:
    from pipeline.store import Store
    from pipeline.summary import RunSummary


def _format_option(help_text: str) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--format", choices=TABLE_FORMATS, default="text", help=help_text)
    return parent


# parent parsers: the options as every command that takes them spells them
TABLE_FORMAT = _format_option(
    "text: aligned tables (default); csv: the table with a header row; json: a list of row objects "
    "(numbers unformatted, intervals as ci_low/ci_high)"
)
RUN_FORMAT = _format_option(
    "text: the summary (default); csv: one row of the run's counts (`voc nps|drivers|themes --format "
    'csv` give the other tables); json: an object of named tables, the counts under "run"'
)
PROGRESS = argparse.ArgumentParser(add_help=False)
PROGRESS.add_argument(
    "--progress",
    choices=PROGRESS_MODES,
    default="auto",
    help="progress on stderr: bar, log lines, none, or auto (default): bars on a terminal, else log lines",
)
PROGRESS.add_argument(
    "--progress-every",
    type=float,
    default=LOG_EVERY_SECONDS,
    metavar="SECONDS",
    help=f"seconds between progress log lines (default {LOG_EVERY_SECONDS:.0f})",
)


def progress_for(args: argparse.Namespace) -> AbstractContextManager[Progress]:
    return progress_reporter(args.progress, sys.stderr, args.progress_every)


def print_table(rows: Sequence[Row], fmt: Literal["csv", "json"]) -> int:
    """One table on stdout as CSV or JSON; returns the command's exit status."""
    _write_utf8(table_text(rows, fmt))
    return 0


def print_run_tables(
    summary: RunSummary, store: Store, settings: Settings, model_version: str, fmt: str
) -> int:
    """``voc run --format csv|json``: the run's counts as one CSV row, or every table of the
    text summary as JSON (`pipeline.report.run_summary_tables`)."""
    from pipeline.report import run_counts_row, run_summary_tables

    if fmt == "csv":
        return print_table([run_counts_row(summary, model_version)], "csv")
    tables = run_summary_tables(summary, store, list(settings.source.segments), model_version,
                                settings.nps.confidence, settings.drivers.windows)  # fmt: skip
    _write_utf8(tables_json(tables))
    return 0


def _write_utf8(text: str) -> None:
    """CSV and JSON go out as UTF-8 whatever the locale says stdout is."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # stdout replaced by a text-only stream
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8"))
    buffer.flush()
