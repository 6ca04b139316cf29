"""The report's numbers, read from the result tables only (never from the input or the model).

Every query is bounded by the window's dates, so building the report costs the same whatever the
history holds. NPS and its intervals are computed from counts summed over nps_daily, never
averaged from daily NPS values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from pipeline.errors import VocError
from pipeline.nps import NpsEstimate, nps_estimate, z_value
from pipeline.report import detractor_drivers, top_detractor_terms
from pipeline.store import Store
from pipeline.theme_report import theme_examples, window_themes

Period = Literal["day", "week", "month"]
TREND_PERIODS = {"day": 0, "week": 13, "month": 12}  # periods shown; days: the window itself
TREND_SEGMENT_VALUES = 8  # lines in the trend chart at most: the largest segment values
DRIVERS_WITH_EXAMPLES = 5
EXAMPLES_PER_DRIVER = 3
THEMES_SHOWN = 10


@dataclass(frozen=True)
class Headline:
    """NPS of the window, of the window before it, and whether the change is more than noise."""

    start: date
    end: date
    current: NpsEstimate
    previous_start: date
    previous: NpsEstimate
    change: float | None  # current − previous NPS, points
    change_ci: tuple[float, float] | None
    change_is_real: bool  # the change's interval excludes zero

    @property
    def previous_end(self) -> date:
        return self.start - timedelta(days=1)


@dataclass(frozen=True)
class Quality:
    published: int
    quarantined: dict[str, int]  # reason code -> records of the window's dates
    quarantined_undated: int  # records with no readable date, from the runs of the window
    runs: list[dict[str, Any]]
    versions: dict[str, list[str]]  # column -> distinct values on the window's rows
    sentence_uncovered_share: float | None
    detractor_uncovered_share: float | None
    unsure_sentence_share: float | None
    low_n_drivers: int
    drivers: int

    @property
    def rows_read(self) -> int:
        """Records of the window: published or quarantined, none lost."""
        return self.published + sum(self.quarantined.values()) + self.quarantined_undated


@dataclass(frozen=True)
class ReportData:
    window_days: int
    segment: str | None
    period: Period
    confidence: float
    headline: Headline
    trend: list[dict[str, Any]]
    drivers: list[dict[str, Any]]
    sentiment: list[dict[str, Any]]
    sentiment_segment: str | None
    themes: list[dict[str, Any]]
    uncovered_terms: list[dict[str, Any]]
    examples: list[dict[str, Any]]
    quality: Quality
    notes: list[str] = field(default_factory=list)


def gather_report(
    store: Store,
    window: int,
    end: date | None = None,
    segment: str | None = None,
    period: Period = "week",
    confidence: float = 0.95,
    default_segment: str | None = None,
) -> ReportData:
    """Everything the page shows for the ``window`` days to ``end`` (default: the latest date).

    ``segment`` splits the trend and the sentiment heatmap; without it the heatmap uses
    ``default_segment`` (the first configured segment)."""
    end = end or latest_date(store)
    start = end - timedelta(days=window - 1)
    drivers = driver_rows(store, window, end)
    sentiment_segment = segment or default_segment
    themes = window_themes(store, window, None, end)[:THEMES_SHOWN]
    examples = theme_examples(store, [t["theme_id"] for t in themes], EXAMPLES_PER_DRIVER)
    for theme in themes:
        theme["examples"] = examples.get(theme["theme_id"], [])
    return ReportData(
        window_days=window,
        segment=segment,
        period=period,
        confidence=confidence,
        headline=headline(store, start, end, confidence),
        trend=trend_rows(store, end, window, period, segment, confidence),
        drivers=drivers,
        sentiment=sentiment_rows(store, start, end, sentiment_segment),
        sentiment_segment=sentiment_segment,
        themes=themes,
        uncovered_terms=[] if themes else uncovered_terms(store, window, end),
        examples=driver_examples(store, window, end),
        quality=quality(store, start, end, drivers),
    )


def latest_date(store: Store) -> date:
    found = store.query("SELECT max(response_date) FROM nps_daily")
    if not found or found[0][0] is None:
        raise VocError("the result tables hold no responses; run `voc run INPUT` first")
    latest: date = found[0][0]
    return latest


def window_counts(store: Store, start: date, end: date) -> tuple[int, int, int]:
    """Promoters, passives and detractors of every response dated ``start`` .. ``end``."""
    found = store.query(
        "SELECT coalesce(sum(promoters), 0), coalesce(sum(passives), 0), coalesce(sum(detractors), 0) "
        "FROM nps_daily WHERE segment_name = 'all' AND response_date BETWEEN ? AND ?",
        [start, end],
    )
    promoters, passives, detractors = (int(v) for v in found[0])
    return promoters, passives, detractors


def headline(store: Store, start: date, end: date, confidence: float) -> Headline:
    days = (end - start).days + 1
    previous_start = start - timedelta(days=days)
    current = nps_estimate(*window_counts(store, start, end), confidence)
    previous = nps_estimate(*window_counts(store, previous_start, start - timedelta(days=1)), confidence)
    if current.nps is None or previous.nps is None:
        return Headline(start, end, current, previous_start, previous, None, None, False)
    change = current.nps - previous.nps
    # the windows share no response, so the difference's variance is the sum of theirs
    half = z_value(confidence) * math.hypot(current.se, previous.se)
    interval = (change - half, change + half)
    real = interval[0] > 0 or interval[1] < 0
    return Headline(start, end, current, previous_start, previous, change, interval, real)


def trend_start(end: date, window: int, period: Period) -> date:
    """The first day the trend shows: the window for days, else whole periods back from ``end``."""
    if period == "day":
        return end - timedelta(days=window - 1)
    if period == "week":
        monday = end - timedelta(days=end.weekday())
        return monday - timedelta(weeks=TREND_PERIODS["week"] - 1)
    month = end.replace(day=1)
    for _ in range(TREND_PERIODS["month"] - 1):
        month = (month - timedelta(days=1)).replace(day=1)
    return month


def trend_rows(
    store: Store, end: date, window: int, period: Period, segment: str | None, confidence: float
) -> list[dict[str, Any]]:
    """NPS per period (and per segment value, the largest few) with its interval."""
    start = trend_start(end, window, period)
    bucket = "response_date" if period == "day" else f"CAST(date_trunc('{period}', response_date) AS DATE)"
    rows = store.query(
        f"""
        SELECT {bucket} AS period_start, segment_value, sum(promoters), sum(passives), sum(detractors)
        FROM nps_daily WHERE segment_name = ? AND response_date BETWEEN ? AND ?
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        [segment or "all", start, end],
    )
    sizes: dict[str, int] = {}
    for _, value, promoters, passives, detractors in rows:
        sizes[value] = sizes.get(value, 0) + promoters + passives + detractors
    shown = sorted(sizes, key=lambda v: (-sizes[v], v))[:TREND_SEGMENT_VALUES]
    result = []
    for period_start, value, promoters, passives, detractors in rows:
        if value not in shown:
            continue
        est = nps_estimate(int(promoters), int(passives), int(detractors), confidence)
        result.append({"period_start": period_start, "segment_value": value, "responses": est.n,
                       "nps": est.nps, "ci_low": est.ci_low, "ci_high": est.ci_high})  # fmt: skip
    return result


DRIVER_COLUMNS = ("topic_id", "label_ja", "label_en", "mentions", "prevalence", "nps_mentioning", "impact",
                  "impact_ci_low", "impact_ci_high", "impact_q", "adjusted_impact", "adjusted_impact_ci_low",
                  "adjusted_impact_ci_high", "robust", "rising", "emerging", "low_confidence")  # fmt: skip


def driver_rows(store: Store, window: int, end: date) -> list[dict[str, Any]]:
    """Every leaf topic's driver row for all responses, the one pulling NPS down most first."""
    select = ", ".join(f"t.{c}" if c.startswith("label_") else f"d.{c}" for c in DRIVER_COLUMNS)
    rows = store.query(
        f"""
        SELECT {select} FROM drivers d
        JOIN topics t ON t.topic_id = d.topic_id AND t.taxonomy_version = d.taxonomy_version
        WHERE d.window_days = ? AND d.window_end = ? AND d.segment_name = 'all'
          AND d.topic_level = 'leaf' AND d.impact IS NOT NULL
        ORDER BY d.impact, d.topic_id
        """,
        [window, end],
    )
    return [dict(zip(DRIVER_COLUMNS, row, strict=True)) for row in rows]


def sentiment_rows(store: Store, start: date, end: date, segment: str | None) -> list[dict[str, Any]]:
    """Per leaf topic and segment value (and for all responses): mentions and net sentiment, the
    share positive minus the share negative among the topic's mentions."""
    by_segment = (
        """UNION ALL
        SELECT coalesce(g.segment_value, '(blank)'), rt.topic_id, rt.taxonomy_version, rt.topic_sentiment
        FROM response_topics rt JOIN response_segments g
          ON g.response_id = rt.response_id AND g.segment_name = ?
        WHERE rt.response_date BETWEEN ? AND ?"""
        if segment
        else ""
    )
    params: list[Any] = [start, end, *([segment, start, end] if segment else [])]
    rows = store.query(
        f"""
        WITH cells AS (
          SELECT 'all' AS segment_value, topic_id, taxonomy_version, topic_sentiment
          FROM response_topics WHERE response_date BETWEEN ? AND ?
          {by_segment}
        )
        SELECT c.segment_value, c.topic_id, min(t.label_ja), min(t.label_en), count(*),
               count(*) FILTER (WHERE c.topic_sentiment = 'negative'),
               count(*) FILTER (WHERE c.topic_sentiment = 'positive')
        FROM cells c JOIN topics t ON t.topic_id = c.topic_id AND t.taxonomy_version = c.taxonomy_version
        GROUP BY 1, 2 ORDER BY 2, 1
        """,
        params,
    )
    return [
        {"segment_value": value, "topic_id": topic, "label_ja": ja, "label_en": en, "mentions": n,
         "negative": negative, "positive": positive, "net_sentiment": (positive - negative) / n}
        for value, topic, ja, en, n, negative, positive in rows
    ]  # fmt: skip


def uncovered_terms(store: Store, window: int, end: date) -> list[dict[str, Any]]:
    """Detractor terms no topic covers: what the themes section shows when there are no themes."""
    return [t for t in top_detractor_terms(store, window, end, limit=30) if not t["covered_by_topic_id"]][:10]


def driver_examples(store: Store, window: int, end: date) -> list[dict[str, Any]]:
    """The masked example comments of the drivers that pull NPS down most."""
    rows = detractor_drivers(store, window, None, end, limit=DRIVERS_WITH_EXAMPLES)
    return [
        {"topic_id": r["topic_id"], "label_ja": r["label_ja"], "impact": r["impact"],
         "comments": r["examples"][:EXAMPLES_PER_DRIVER]}
        for r in rows
        if r["examples"]
    ]  # fmt: skip


VERSION_COLUMNS = ("model_version", "taxonomy_version", "dictionary_version", "normalizer_version",
                   "config_hash")  # fmt: skip


def quality(store: Store, start: date, end: date, drivers: list[dict[str, Any]]) -> Quality:
    """Where the window's numbers come from and how far to trust them."""
    window = [start, end]
    published = sum(window_counts(store, start, end))
    reasons = store.query(
        "SELECT reason_code, count(*) FROM quarantine WHERE response_date BETWEEN ? AND ? "
        "GROUP BY 1 ORDER BY 2 DESC, 1",
        window,
    )
    runs = window_runs(store, start, end)
    undated = store.query(
        "SELECT count(*) FROM quarantine WHERE response_date IS NULL AND run_id = ANY(?)",
        [[r["run_id"] for r in runs]],
    )
    versions = {
        column: [v for (v,) in store.query(
            f"SELECT DISTINCT {column} FROM responses WHERE response_date BETWEEN ? AND ? ORDER BY 1", window
        )]
        for column in VERSION_COLUMNS
    }  # fmt: skip
    coverage = store.query(
        "SELECT sentence_uncovered_share, detractor_uncovered_share FROM coverage "
        "WHERE window_end = ? AND window_days = ? AND segment_name = 'all'",
        [end, (end - start).days + 1],
    )
    # the run's flag (pipeline/classify.py); rows written before it existed have NULL and are left out
    unsure = store.query(
        "SELECT count(low_confidence), count(*) FILTER (WHERE low_confidence) "
        "FROM sentences WHERE response_date BETWEEN ? AND ?",
        window,
    )
    sentences, unsure_count = unsure[0]
    return Quality(
        published=published,
        quarantined={reason: count for reason, count in reasons},
        quarantined_undated=int(undated[0][0]),
        runs=runs,
        versions=versions,
        sentence_uncovered_share=coverage[0][0] if coverage else None,
        detractor_uncovered_share=coverage[0][1] if coverage else None,
        unsure_sentence_share=unsure_count / sentences if sentences else None,
        low_n_drivers=sum(bool(d["low_confidence"]) for d in drivers),
        drivers=len(drivers),
    )


def window_runs(store: Store, start: date, end: date) -> list[dict[str, Any]]:
    """The runs that wrote the window's responses, with how many of them each wrote."""
    rows = store.query(
        """
        SELECT r.run_id, count(*), min(u.kind), min(u.status), min(u.finished_at)
        FROM responses r JOIN runs u ON u.run_id = r.run_id
        WHERE r.response_date BETWEEN ? AND ?
        GROUP BY 1 ORDER BY 5, 1
        """,
        [start, end],
    )
    return [
        {"run_id": run_id, "responses": n, "kind": kind, "status": status, "finished_at": finished}
        for run_id, n, kind, status, finished in rows
    ]
