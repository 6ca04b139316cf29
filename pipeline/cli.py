"""The `voc` command.

User errors (a missing file, an unknown config key, a missing column) print one line
starting with "error:" and exit with status 2; there is no traceback for them.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from pipeline.errors import VocError
from pipeline.settings import Settings, load_settings


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (use YYYY-MM-DD)") from exc


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if args.db is not None:
        settings = settings.model_copy(
            update={"store": settings.store.model_copy(update={"duckdb_path": args.db})}
        )
    return settings


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.job import DateScope, run_job
    from pipeline.report import format_run_summary
    from pipeline.store import DuckDBStore

    settings = _settings(args)
    if args.command == "backfill":
        scope, kind = DateScope(args.start, args.end), "backfill"
    else:
        scope, kind = (DateScope.single(args.date) if args.date else DateScope()), "run"
    summary = run_job(args.input, settings, scope, kind, source_name=args.source_name)  # type: ignore[arg-type]
    with DuckDBStore(settings.store.duckdb_path) as store:
        print(format_run_summary(summary, store, list(settings.source.segments)))
    return 0


def _cmd_nps(args: argparse.Namespace) -> int:
    from pipeline.report import format_nps_rows, nps_by_period
    from pipeline.store import DuckDBStore

    settings = _settings(args)
    if args.segment and args.segment not in settings.source.segments:
        known = ", ".join(settings.source.segments) or "none configured"
        raise VocError(f"unknown segment {args.segment!r} (segments: {known})")
    if not settings.store.duckdb_path.exists():
        raise VocError(f"no result tables at {settings.store.duckdb_path}; run `voc run INPUT` first")
    with DuckDBStore(settings.store.duckdb_path) as store:
        rows = nps_by_period(store, args.period, args.segment, args.start, args.end, settings.nps.confidence)
    if not rows:
        print("No responses in the result tables for that selection.")
        return 0
    print(format_nps_rows(rows, args.segment))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voc", description="Japanese-first voice-of-customer pipeline.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, help="settings YAML (default: $VOC_CONFIG or configs/pipeline.yaml)"
    )
    common.add_argument(
        "--db", type=Path, help="DuckDB file for the result tables (overrides store.duckdb_path)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", parents=[common], help="process a survey export (all dates, or one --date)")
    run.add_argument("input", type=Path, help="CSV/TSV (UTF-8 or CP932), JSONL or Parquet export")
    run.add_argument("--date", type=_date, help="process only this response date (YYYY-MM-DD, Asia/Tokyo)")
    run.add_argument("--source-name", help="name recorded for the input (default: the file name)")
    run.set_defaults(handler=_cmd_run)

    backfill = sub.add_parser("backfill", parents=[common], help="re-process a date range from an export")
    backfill.add_argument("input", type=Path)
    backfill.add_argument("--start", type=_date, required=True)
    backfill.add_argument("--end", type=_date, required=True)
    backfill.add_argument("--source-name")
    backfill.set_defaults(handler=_cmd_run)

    nps = sub.add_parser("nps", parents=[common], help="print NPS by period and segment")
    nps.add_argument("--period", choices=["day", "week", "month", "all"], default="month")
    nps.add_argument("--segment", help="a configured segment name, e.g. channel")
    nps.add_argument("--start", type=_date)
    nps.add_argument("--end", type=_date)
    nps.set_defaults(handler=_cmd_nps)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "backfill" and args.start > args.end:
        print(f"error: --start {args.start} is after --end {args.end}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except VocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
