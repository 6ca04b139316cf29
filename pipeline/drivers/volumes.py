"""Daily response and mention counts before a window, for the rising test (volume change)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.contracts import BLANK_SEGMENT
from pipeline.drivers.load import ALL
from pipeline.settings import DriverSettings
from pipeline.store import Store
from pipeline.taxonomy import Taxonomy


@dataclass
class VolumeSeries:
    """Daily response and mention counts per segment cell, as running sums, for the rising test."""

    origin: int  # ordinal of the first day
    totals: dict[tuple[str, str], NDArray[np.int64]]
    mentions: dict[tuple[str, str, str], NDArray[np.int64]]  # (segment_name, value, topic) → cumsum

    @classmethod
    def load(
        cls,
        store: Store,
        ends: list[date],
        settings: DriverSettings,
        segment_names: list[str],
        taxonomy: Taxonomy,
        model_version: str | None = None,
    ) -> VolumeSeries:
        """Counts from the first day any of ``ends``' previous periods reaches to the last end;
        with ``model_version``, the discovered themes' mentions too (keyed by theme id)."""
        if not ends:
            return cls(0, {}, {})
        first = ends[0] - timedelta(days=(settings.previous_periods + 1) * max(settings.windows))
        last = ends[-1]
        totals = _DailyCounts(first, last)
        mentions = _DailyCounts(first, last)
        span = [first, last]
        for day, count in store.query(
            "SELECT response_date, count(*) FROM responses WHERE response_date BETWEEN ? AND ? GROUP BY 1",
            span,
        ):
            totals.add((ALL, ALL), day, count)
        for day, name, value, count in store.query(
            "SELECT response_date, segment_name, coalesce(segment_value, ?), count(*) FROM response_segments "
            "WHERE response_date BETWEEN ? AND ? GROUP BY 1, 2, 3",
            [BLANK_SEGMENT, *span],
        ):
            if name in segment_names:
                totals.add((name, value), day, count)
        themes = _theme_mentions(store, span, model_version) if model_version else []
        for day, name, value, topic, count in [*_topic_mentions(store, span, taxonomy), *themes]:
            if name == ALL or name in segment_names:
                mentions.add((name, value, topic), day, count)
        return cls(first.toordinal(), totals.running_sums(), mentions.running_sums())

    def _sum(self, series: NDArray[np.int64] | None, after: int, through: int) -> int:
        """Count over days in (after, through], as ordinals."""
        if series is None:
            return 0
        top = len(series) - 1

        def at(ordinal: int) -> int:  # responses on days up to and including ``ordinal``
            return int(series[min(max(ordinal - self.origin + 1, 0), top)])

        return at(through) - at(after)

    def previous_of(
        self, cell: tuple[str, str], keys: list[str], end: int, window: int, periods: int, since: int
    ) -> tuple[int, int]:
        """(mentions of any of ``keys``, responses) over the previous periods, counting only days
        from ordinal ``since`` on; (0, 0) when that leaves less than one window."""
        after, through = max(end - (periods + 1) * window, since - 1), end - window
        if through - after < window:
            return 0, 0
        mentions = sum(self._sum(self.mentions.get((*cell, key)), after, through) for key in keys)
        return mentions, self._sum(self.totals.get(cell), after, through)

    def previous(
        self, cell: tuple[str, str], topic: str, end: int, window: int, periods: int
    ) -> tuple[int, int]:
        """(mentions, responses) pooled over the ``periods`` windows before the one ending at ``end``."""
        after, through = end - (periods + 1) * window, end - window
        return (
            self._sum(self.mentions.get((*cell, topic)), after, through),
            self._sum(self.totals.get(cell), after, through),
        )


@dataclass
class _DailyCounts:
    """Counts per key and day from ``first`` to ``last``."""

    first: date
    last: date
    series: dict[Any, NDArray[np.int64]] = field(default_factory=dict)

    def add(self, key: Any, day: date, count: int) -> None:
        if key not in self.series:
            self.series[key] = np.zeros(self.last.toordinal() - self.first.toordinal() + 1, dtype=np.int64)
        self.series[key][day.toordinal() - self.first.toordinal()] += count

    def running_sums(self) -> dict[Any, NDArray[np.int64]]:
        """Per key, the count up to and including each day, after a leading 0."""
        return {k: np.concatenate([[0], np.cumsum(v)]) for k, v in self.series.items()}


def _topic_mentions(store: Store, span: list[date], taxonomy: Taxonomy) -> list[tuple[Any, ...]]:
    """(day, segment_name, segment_value, topic, responses) for leaves and parents, for all
    responses (segment 'all') and per segment value."""
    topic_sql = (
        "SELECT t.response_date, {cell}, t.{column}, count(DISTINCT t.response_id) "
        "FROM response_topics t "
        "{join} WHERE t.response_date BETWEEN ? AND ? AND t.taxonomy_version = ? GROUP BY 1, 2, 3, 4"
    )
    rows: list[tuple[Any, ...]] = []
    for column in ("topic_id", "parent_topic_id"):
        rows += store.query(
            topic_sql.format(cell="'all', 'all'", column=column, join=""), [*span, taxonomy.version]
        ) + store.query(
            topic_sql.format(
                cell="g.segment_name, coalesce(g.segment_value, ?)",
                column=column,
                join="JOIN response_segments g ON g.response_id = t.response_id",
            ),
            [BLANK_SEGMENT, *span, taxonomy.version],
        )
    return rows


def _theme_mentions(store: Store, span: list[date], model_version: str) -> list[tuple[Any, ...]]:
    """(day, segment_name, segment_value, theme, responses) for every theme as created."""
    theme_sql = (
        "SELECT m.response_date, {cell}, m.theme_id, count(DISTINCT m.response_id) FROM theme_sentences m "
        "{join} WHERE m.response_date BETWEEN ? AND ? AND m.model_version = ? GROUP BY 1, 2, 3, 4"
    )
    return store.query(theme_sql.format(cell="'all', 'all'", join=""), [*span, model_version]) + store.query(
        theme_sql.format(
            cell="g.segment_name, coalesce(g.segment_value, ?)",
            join="JOIN response_segments g ON g.response_id = m.response_id",
        ),
        [BLANK_SEGMENT, *span, model_version],
    )
