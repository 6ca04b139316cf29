"""Which window ends a run's dates can change, and replacing their rows in batches of window ends."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any

from pipeline.contracts import Lineage
from pipeline.drivers.load import load_window_data
from pipeline.drivers.themes import ThemeHistory
from pipeline.drivers.volumes import VolumeSeries
from pipeline.drivers.window import window_rows
from pipeline.errors import Stage
from pipeline.progress import Progress, no_progress
from pipeline.schema import partitioned_tables
from pipeline.settings import DriverSettings, Settings
from pipeline.store import Store
from pipeline.taxonomy import Taxonomy

ENDS_PER_BATCH = 31  # window ends computed together: bounds memory to about a month plus the window


def affected_range(partitions: Sequence[date], settings: DriverSettings) -> tuple[date, date] | None:
    """Window ends whose rows a change to ``partitions`` can change: through the last window
    that still counts those dates as one of its previous periods."""
    if not partitions:
        return None
    reach = (settings.previous_periods + 1) * max(settings.windows) - 1
    return min(partitions), max(partitions) + timedelta(days=reach)


def refresh_drivers(
    store: Store,
    partitions: Sequence[date],
    settings: Settings,
    taxonomy: Taxonomy,
    lineage: Lineage,
    through: date | None = None,
    progress: Progress = no_progress,
) -> int:
    """Replace the driver tables (those partitioned by window_end in tables.yaml) for every
    window end the replaced partitions can affect, and through ``through`` (the last date theme
    discovery replayed: its themes changed up to there). ``progress`` counts the window ends.

    Returns the number of driver rows written."""
    span = affected_range(partitions, settings.drivers)
    if span is None:
        return 0
    if through is not None and through > span[1]:
        span = (span[0], through)
    tables = partitioned_tables("window_end")
    for table in tables:
        store.delete_where(table, "window_end BETWEEN ? AND ?", list(span))
    ends = [
        row[0]
        for row in store.query(
            "SELECT DISTINCT response_date FROM responses WHERE response_date BETWEEN ? AND ? ORDER BY 1",
            list(span),
        )
    ]
    segment_names = list(settings.source.segments)
    volumes = VolumeSeries.load(store, ends, settings.drivers, segment_names, taxonomy, lineage.model_version)
    written = ends_done = 0
    progress(Stage.DRIVERS, 0, len(ends), "dates")
    for batch in _batches(ends, ENDS_PER_BATCH):
        first = batch[0] - timedelta(days=max(settings.drivers.windows) - 1)
        data = load_window_data(store, first, batch[-1], segment_names, taxonomy)
        history = ThemeHistory.load(store, data, first, batch[-1], lineage.model_version)
        rows: dict[str, list[dict[str, Any]]] = {table: [] for table in tables}
        for end in batch:
            for window in settings.drivers.windows:
                window_tables = window_rows(data, end, window, settings, taxonomy, volumes, lineage, history)
                for table, table_rows in window_tables.items():
                    rows[table] += table_rows
        for table, table_rows in rows.items():
            store.insert(table, table_rows)
        written += len(rows["drivers"])
        ends_done += len(batch)
        progress(Stage.DRIVERS, ends_done, len(ends), "dates")
        del data, history, rows  # before the next batch loads: one batch's data in memory at a time
    return written


def _batches(items: list[date], size: int) -> Iterator[list[date]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
