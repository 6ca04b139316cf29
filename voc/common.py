"""What the `voc` commands share: dates on the command line, settings with --db applied, and the
result store opened only when it exists."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from pipeline.errors import VocError
from pipeline.settings import Settings, load_settings


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (use YYYY-MM-DD)") from exc


def settings_from(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if args.db is not None:
        settings = settings.model_copy(
            update={"store": settings.store.model_copy(update={"duckdb_path": args.db})}
        )
    return settings


def open_results(settings: Settings) -> Any:
    """The result store, refusing to create an empty DuckDB file just to report on it.

    A DuckDB file is held from here until the command closes it, so a run cannot publish while it
    reads: every query sees the tables as the last publish left them. When a run is publishing,
    this waits for it (up to store.lock_timeout), as runs wait for each other."""
    from pipeline.store import open_store, store_exists

    if not store_exists(settings.store):
        raise VocError(f"no result tables at {settings.store.duckdb_path}; run `voc run INPUT` first")
    return open_store(settings.store)
