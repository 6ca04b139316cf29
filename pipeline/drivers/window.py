"""One window's rows of the drivers, driver_examples and detractor_terms tables: every segment
cell (all responses, and each value of each configured segment), level and topic."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from pipeline.contracts import Lineage
from pipeline.drivers.adjusted import NO_ADJUSTMENT, adjusted_columns
from pipeline.drivers.examples import choose_examples, example_rows
from pipeline.drivers.load import ALL, Mask, TopicLevel, WindowData
from pipeline.drivers.rows import LevelCounts, driver_row, is_low_confidence, set_flags, volume_change_columns
from pipeline.drivers.terms import detractor_term_rows
from pipeline.drivers.themes import ThemeHistory, coverage_row, theme_window_rows
from pipeline.drivers.volumes import VolumeSeries
from pipeline.nps import nps_estimate, z_value
from pipeline.schema import lineage_columns
from pipeline.settings import Settings
from pipeline.taxonomy import Taxonomy

Rows = list[dict[str, Any]]
WINDOW_TABLES = ("drivers", "driver_examples", "detractor_terms", "theme_windows", "coverage")


@dataclass(frozen=True)
class Cell:
    """A segment cell of one window: its key columns and the responses it selects."""

    key: dict[str, Any]  # window_end, window_days, window_start, segment_name, segment_value
    selected: Mask
    responses: int
    promoters: int
    detractors: int
    nps: float | None

    @classmethod
    def of(cls, data: WindowData, selected: Mask, key: dict[str, Any], confidence: float) -> Cell:
        n = int(selected.sum())
        detractors = int((selected & data.detractor).sum())
        promoters = int((selected & data.promoter).sum())
        overall = nps_estimate(promoters, n - promoters - detractors, detractors, confidence)
        return cls(key, selected, n, promoters, detractors, overall.nps)


def window_rows(
    data: WindowData,
    end: date,
    window: int,
    settings: Settings,
    taxonomy: Taxonomy,
    volumes: VolumeSeries,
    lineage: Lineage,
    history: ThemeHistory,
) -> dict[str, Rows]:
    """The rows of the window of ``window`` days ending on ``end``, by table name."""
    tables: dict[str, Rows] = {name: [] for name in WINDOW_TABLES}
    cells: list[tuple[dict[str, Any], Mask]] = []
    in_window = (data.day > end.toordinal() - window) & (data.day <= end.toordinal())
    if not in_window.any():
        return tables
    z = z_value(settings.nps.confidence)
    window_key = {"window_end": end, "window_days": window, "window_start": end - timedelta(days=window - 1)}
    for (segment_name, segment_value), selected in _cells(data, in_window):
        key = {**window_key, "segment_name": segment_name, "segment_value": segment_value}
        cell = Cell.of(data, selected, key, settings.nps.confidence)
        for level in data.levels:
            drivers, examples = _level_rows(data, cell, level, settings, volumes)
            tables["drivers"] += drivers
            tables["driver_examples"] += examples
        tables["detractor_terms"] += detractor_term_rows(data, selected, key, settings.drivers, z, taxonomy)
        tables["coverage"].append(coverage_row(data, history, key, selected))
        cells.append((key, selected))
    set_flags(tables["drivers"], settings.drivers)
    tables["theme_windows"] = theme_window_rows(data, history, cells, settings, volumes)
    _add_lineage(tables, lineage)
    return tables


def _cells(data: WindowData, in_window: Mask) -> Iterator[tuple[tuple[str, str], Mask]]:
    yield (ALL, ALL), in_window
    for name, categories in data.segments.items():
        for code in np.unique(categories.codes[in_window]):
            yield (name, categories.names[code]), in_window & (categories.codes == code)


def _level_rows(
    data: WindowData, cell: Cell, level: TopicLevel, settings: Settings, volumes: VolumeSeries
) -> tuple[Rows, Rows]:
    """Driver rows of every topic of ``level`` that the cell mentions, and their example rows."""
    driver_settings = settings.drivers
    window, end = cell.key["window_days"], cell.key["window_end"]
    z = z_value(settings.nps.confidence)
    adjusted = adjusted_columns(
        data, cell.selected, level, cell.key["segment_name"], window, driver_settings, z
    )
    counts = LevelCounts.of(data, cell.selected, level)
    drivers: Rows = []
    examples: Rows = []
    for k, topic_id in enumerate(level.ids):
        n_t = int(counts.mentions[k])
        if n_t == 0:
            continue
        row = driver_row(counts, k, cell.responses, cell.promoters, cell.detractors, settings.nps.confidence)
        row.update(cell.key)
        row.update(
            topic_id=topic_id,
            topic_level=level.name.value,
            parent_topic_id=level.parents[k],
            nps_all=cell.nps,
        )
        row.update(adjusted.get(k, NO_ADJUSTMENT))
        mentions_before, responses_before = volumes.previous(
            (cell.key["segment_name"], cell.key["segment_value"]),
            topic_id,
            end.toordinal(),
            window,
            driver_settings.previous_periods,
        )
        row.update(volume_change_columns(n_t, cell.responses, mentions_before, responses_before))
        row["low_confidence"] = is_low_confidence(row, driver_settings)
        chosen = _examples(data, cell, level, k, row, driver_settings.examples)
        row["example_response_ids"] = ",".join(data.ids[i] for i in chosen)
        examples += example_rows(data, chosen, cell.key, topic_id)
        drivers.append(row)
    return drivers, examples


def _examples(
    data: WindowData, cell: Cell, level: TopicLevel, k: int, row: dict[str, Any], limit: int
) -> list[int]:
    """Example detractor comments for a topic that pulls NPS down and that detractors mention."""
    pulls_down = row["impact"] is not None and row["impact"] < 0
    if not (pulls_down and row["detractors_mentioning"]):
        return []
    return choose_examples(data, cell.selected & data.detractor & level.mention[:, k], level, k, limit)


def _add_lineage(tables: dict[str, Rows], lineage: Lineage) -> None:
    """The lineage columns each table documents: run, settings, model and taxonomy (and the
    dictionary, for terms)."""
    for table, rows in tables.items():
        columns = lineage_columns(table, lineage)
        for row in rows:
            row.update(columns)
