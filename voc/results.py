"""The `voc` commands that read the result tables: nps, drivers, themes, taxonomy promote and
report. They never load a model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.settings import check_segment, check_window
from pipeline.table_output import driver_table, nps_table, theme_table
from voc.common import open_results, parse_date, settings_from
from voc.output import TABLE_FORMAT, print_table


def _cmd_nps(args: argparse.Namespace) -> int:
    from pipeline.report import format_nps_rows, nps_by_period

    settings = settings_from(args)
    check_segment(settings, args.segment)
    with open_results(settings) as store:
        rows = nps_by_period(store, args.period, args.segment, args.start, args.end, settings.nps.confidence)
    if args.format != "text":
        return print_table(nps_table(rows, args.segment, settings.nps.confidence), args.format)
    if not rows:
        print("No responses in the result tables for that selection.")
        return 0
    print(format_nps_rows(rows, args.segment, settings.nps.confidence))
    return 0


def _cmd_drivers(args: argparse.Namespace) -> int:
    from pipeline.report import detractor_drivers, format_drivers

    settings = settings_from(args)
    check_segment(settings, args.segment)
    check_window(settings, args.window)
    with open_results(settings) as store:
        rows = detractor_drivers(store, args.window, args.segment, args.end, args.limit, args.parents)
    if args.format != "text":
        return print_table(driver_table(rows, args.examples), args.format)
    if not rows:
        print("No detractor drivers for that selection (run `voc run INPUT` first, or pick another --end).")
        return 0
    first = rows[0]
    print(
        f"Detractor drivers, {args.window} days {first['window_start']} .. {first['window_end']}"
        f"{f' by {args.segment}' if args.segment else ''}: impact = NPS − NPS without the topic's "
        "responses; adjusted = ΔNPS with co-mentioned topics and controls held fixed.\n"
        "Flags: robust = impact, odds ratio and adjusted agree and survive FDR control; "
        "low-n = too few mentions or detractors to lean on.\n"
    )
    print(format_drivers(rows, settings.nps.confidence, args.examples))
    return 0


def _cmd_themes(args: argparse.Namespace) -> int:
    from pipeline.theme_report import format_themes, theme_examples, window_themes

    settings = settings_from(args)
    check_segment(settings, args.segment)
    with open_results(settings) as store:
        rows = window_themes(store, args.window, args.segment, args.end, args.all)
        examples = theme_examples(store, sorted({r["theme_id"] for r in rows}), args.examples)
    if args.format != "text":
        return print_table(theme_table(rows, examples), args.format)
    if not rows:
        print("No new or rising themes in that window (`voc themes --all` lists every theme).")
        return 0
    first = rows[0]
    which = "Themes" if args.all else "New and rising themes"
    by = f" by {args.segment}" if args.segment else ""
    print(
        f"{which}, {args.window} days {first['window_start']} .. {first['window_end']}{by} "
        "(uncovered = no taxonomy topic names them):\n"
    )
    print(format_themes(rows, examples))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from pipeline.theme_report import promote_theme

    settings = settings_from(args)
    with open_results(settings) as store:
        version = promote_theme(store, settings.taxonomy.path, args.theme_id, args.id, args.label_ja,
                                args.label_en, args.parent)  # fmt: skip
    print(f"Added topic {args.id} to {settings.taxonomy.path} (taxonomy version {version}).")
    print("Review its examples and seed terms there; the next `voc run` trains the topic heads for it.")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pipeline.html_report import build_report
    from pipeline.html_report.summary import headline_text

    settings = settings_from(args)
    with open_results(settings) as store:
        data, written = build_report(store, settings, args.window, args.end, args.segment, args.period,
                                     args.format, args.out)  # fmt: skip
    print(headline_text(data))
    if args.format == "html":
        print(f"Report written to {written[0].resolve()}")
    elif written:
        print(f"Charts written to {written[0].parent.resolve()}: {', '.join(p.name for p in written)}")
    else:
        print("No charts: the window holds no responses.")
    return 0


def add_result_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """nps, drivers, themes, taxonomy promote and report."""
    options = [common, TABLE_FORMAT]
    nps = sub.add_parser("nps", parents=options, help="print NPS by period and segment")
    nps.add_argument("--period", choices=["day", "week", "month", "all"], default="month")
    nps.add_argument("--segment", help="a configured segment name, e.g. channel")
    nps.add_argument("--start", type=parse_date)
    nps.add_argument("--end", type=parse_date)
    nps.set_defaults(handler=_cmd_nps)

    drivers = sub.add_parser("drivers", parents=options, help="print the ranked detractor drivers")
    drivers.add_argument("--window", type=int, default=28, help="window length in days (default 28)")
    drivers.add_argument("--segment", help="break down by a configured segment, e.g. channel")
    drivers.add_argument("--end", type=parse_date, help="last day of the window (default: the latest)")
    drivers.add_argument("--limit", type=int, default=5, help="drivers per segment value (default 5)")
    drivers.add_argument("--examples", type=int, default=3, help="example comments per driver (default 3)")
    drivers.add_argument("--parents", action="store_true", help="include parent topics")
    drivers.set_defaults(handler=_cmd_drivers)
    _add_theme_commands(sub, common)
    _add_page_command(sub, common)


def _add_theme_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    themes = sub.add_parser(
        "themes", parents=[common, TABLE_FORMAT], help="print new and rising discovered themes"
    )
    themes.add_argument("--window", type=int, default=28, help="window length in days (default 28)")
    themes.add_argument("--segment", help="break down by a configured segment, e.g. channel")
    themes.add_argument("--end", type=parse_date, help="last day of the window (default: the latest)")
    themes.add_argument("--examples", type=int, default=3, help="example sentences per theme (default 3)")
    themes.add_argument(
        "--all", action="store_true", help="every theme of the window, not only new or rising"
    )
    themes.set_defaults(handler=_cmd_themes)

    taxonomy = sub.add_parser("taxonomy", help="change the topic taxonomy")
    actions = taxonomy.add_subparsers(dest="action", required=True)
    promote = actions.add_parser("promote", parents=[common], help="add a discovered theme as a topic")
    promote.add_argument("theme_id", help="a theme id from `voc themes`")
    promote.add_argument("--id", required=True, help="the new topic's id (snake_case)")
    promote.add_argument("--label-ja", required=True, help="its Japanese label")
    promote.add_argument("--label-en", help="its English label")
    promote.add_argument("--parent", help="a parent topic id (default: none)")
    promote.set_defaults(handler=_cmd_promote)


def _add_page_command(sub: Any, common: argparse.ArgumentParser) -> None:
    report = sub.add_parser(
        "report", parents=[common], help="write the HTML report of a window (or its charts as images)"
    )
    report.add_argument("--window", type=int, default=28, help="window length in days (default 28)")
    report.add_argument("--end", type=parse_date, help="last day of the window (default: the latest)")
    report.add_argument("--segment", help="one trend line per value of this configured segment")
    report.add_argument(
        "--period", choices=["day", "week", "month"], default="week", help="trend by day, week or month"
    )
    report.add_argument(
        "--format", choices=["html", "png", "svg"], default="html",
        help="html: one self-contained page; png/svg: one image per chart, in a folder",
    )  # fmt: skip
    report.add_argument(
        "--out", type=Path, help="file (html) or folder (png, svg) to write (default: store.report_dir)"
    )
    report.set_defaults(handler=_cmd_report)
