"""What drives detractors: the `drivers`, `driver_examples` and `detractor_terms` tables.

For every rolling window (``drivers.windows`` days ending on a response date), every segment
cell (all responses, and each value of each configured segment) and every topic (leaves and
their parents), one row with the statistics of ../shared/design/drivers.md:

- counts, prevalence, NPS among mentions and among the rest;
- remove-the-topic impact with its interval; detractor rate with a Wilson interval; lift;
  relative risk and odds ratio with intervals; share of all detractors; share of negative
  mentions;
- adjusted ΔNPS and odds ratio from regressions with the co-mentioned topics and controls
  (pipeline/regression.py);
- Benjamini–Hochberg q-values per method, over every row of the same window (all segments,
  topics and levels): the family an analyst reads at once;
- flags: robust (impact, odds ratio and adjusted ΔNPS agree in direction, all three survive
  the FDR control, and the row is not low-confidence), rising (volume up against the previous
  periods, after FDR control), emerging (rising from below ``rare_share`` of responses) and
  low-confidence (fewer mentions or detractors than the configured minimum).

Every statistic is computed over all responses in the window, with or without a comment, so
NPS here is the NPS the rest of the tables report. Windows end on every date that has
responses; a run recomputes every window its dates can change (including the later periods
that compare themselves with them), so a re-run or a backfill leaves the same rows as running
the dates one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from pipeline.contracts import BLANK_SEGMENT, Lineage
from pipeline.nps import nps_estimate, z_value
from pipeline.regression import adjusted_effects
from pipeline.settings import DriverSettings, Settings
from pipeline.stats import (
    benjamini_hochberg,
    odds_ratio,
    relative_risk,
    topic_impact,
    two_proportion_z,
    wilson_interval,
)
from pipeline.store import Store
from pipeline.taxonomy import Taxonomy
from pipeline.terms import log_odds_arrays

ALL = "all"
ENDS_PER_BATCH = 31  # window ends computed together: bounds memory to about a month plus the window
_SIMILAR = 0.5  # character-bigram Jaccard above which two example comments count as the same point

Bool = NDArray[np.bool_]


@dataclass
class TopicLevel:
    """Mentions of one taxonomy level: leaves, or parents (a parent is mentioned when any leaf is)."""

    name: str  # "leaf" | "parent"
    ids: list[str]
    parents: list[str | None]
    mention: Bool  # responses × topics
    negative: Bool  # the topic's sentiment in that response is negative
    score: NDArray[np.float64]


@dataclass(frozen=True)
class Coded:
    """A categorical column as integer codes into ``names`` (sorted in string order)."""

    codes: NDArray[np.int64]
    names: list[str]

    @classmethod
    def of(cls, values: NDArray[Any]) -> Coded:
        levels, inverse = np.unique(values, return_inverse=True)
        names = [str(v) for v in levels]
        order = sorted(range(len(names)), key=names.__getitem__)
        recode = np.empty(len(order), dtype=np.int64)
        recode[order] = np.arange(len(order))
        return cls(recode[inverse.reshape(-1)], [names[j] for j in order])


@dataclass
class WindowData:
    """Response-level arrays for the responses of a date span."""

    ids: NDArray[Any]
    day: NDArray[np.int64]  # date ordinals
    detractor: Bool
    promoter: Bool
    has_comment: Bool
    log_chars: NDArray[np.float64]
    month: Coded
    segments: dict[str, Coded]
    levels: list[TopicLevel]
    comments: dict[str, str]  # detractors that mention a topic: their masked comment
    terms: sparse.csr_matrix  # terms × responses, 1 where the response's comment uses the term
    term_names: list[tuple[str, str]]  # (term_kind, term)
    id_rank: NDArray[np.int64]  # position of each response id in sorted order (ties in examples)
    seeded: dict[int, list[int]] = field(default_factory=dict)  # term → leaf columns it seeds (memo)
    _bigrams: dict[str, frozenset[str]] = field(default_factory=dict)

    def bigrams(self, response_id: str) -> frozenset[str]:
        """The response's comment as a set of character bigrams, made when first asked for:
        only the few comments examined as examples ever need one."""
        grams = self._bigrams.get(response_id)
        if grams is None:
            text = self.comments.get(response_id)
            grams = (
                frozenset()
                if text is None
                else frozenset(text[j : j + 2] for j in range(max(len(text) - 1, 1)))
            )
            self._bigrams[response_id] = grams
        return grams


def affected_range(partitions: Sequence[date], settings: DriverSettings) -> tuple[date, date] | None:
    """Window ends whose rows a change to ``partitions`` can change: through the last window
    that still counts those dates as one of its previous periods."""
    if not partitions:
        return None
    reach = (settings.previous_periods + 1) * max(settings.windows) - 1
    return min(partitions), max(partitions) + timedelta(days=reach)


def refresh_drivers(
    store: Store, partitions: Sequence[date], settings: Settings, taxonomy: Taxonomy, lineage: Lineage
) -> int:
    """Replace the driver tables for every window end the replaced partitions can affect.

    Returns the number of driver rows written."""
    span = affected_range(partitions, settings.drivers)
    if span is None:
        return 0
    for table in ("drivers", "driver_examples", "detractor_terms"):
        store.delete_where(table, "window_end BETWEEN ? AND ?", list(span))
    ends = [
        row[0]
        for row in store.query(
            "SELECT DISTINCT response_date FROM responses WHERE response_date BETWEEN ? AND ? ORDER BY 1",
            list(span),
        )
    ]
    segment_names = list(settings.source.segments)
    volumes = VolumeSeries.load(store, ends, settings.drivers, segment_names, taxonomy)
    written = 0
    for batch in _batches(ends, ENDS_PER_BATCH):
        first = batch[0] - timedelta(days=max(settings.drivers.windows) - 1)
        data = load_window_data(store, first, batch[-1], segment_names, taxonomy)
        rows: dict[str, list[dict[str, Any]]] = {"drivers": [], "driver_examples": [], "detractor_terms": []}
        for end in batch:
            for window in settings.drivers.windows:
                drivers, examples, terms = window_rows(
                    data, end, window, settings, taxonomy, volumes, lineage
                )
                rows["drivers"] += drivers
                rows["driver_examples"] += examples
                rows["detractor_terms"] += terms
        for table, table_rows in rows.items():
            store.insert(table, table_rows)
        written += len(rows["drivers"])
        del data, rows  # before the next batch loads: one batch's data in memory at a time
    return written


def _batches(items: list[date], size: int) -> Iterator[list[date]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def load_window_data(
    store: Store, start: date, end: date, segment_names: list[str], taxonomy: Taxonomy
) -> WindowData:
    rows = store.query(
        "SELECT response_id, response_date, nps_category, has_comment, comment_chars FROM responses "
        "WHERE response_date BETWEEN ? AND ? ORDER BY response_id",
        [start, end],
    )
    n = len(rows)
    ids = np.array([r[0] for r in rows], dtype=object)
    index = {r[0]: i for i, r in enumerate(rows)}
    category = np.array([r[2] for r in rows], dtype=object)
    segments = {name: np.full(n, BLANK_SEGMENT, dtype=object) for name in segment_names}
    for response_id, name, value in store.query(
        "SELECT response_id, segment_name, segment_value FROM response_segments "
        "WHERE response_date BETWEEN ? AND ?",
        [start, end],
    ):
        if name in segments and response_id in index and value is not None:
            segments[name][index[response_id]] = value
    leaves = list(taxonomy.leaf_ids)
    parents = sorted({p for t in leaves if (p := taxonomy.parent_of(t))})
    leaf = _empty_level("leaf", leaves, [taxonomy.parent_of(t) for t in leaves], n)
    parent = _empty_level("parent", parents, [None] * len(parents), n)
    leaf_col = {t: j for j, t in enumerate(leaves)}
    parent_col = {t: j for j, t in enumerate(parents)}
    for response_id, topic_id, parent_id, sentiment, score in store.query(
        "SELECT response_id, topic_id, parent_topic_id, topic_sentiment, topic_score FROM response_topics "
        "WHERE response_date BETWEEN ? AND ?",
        [start, end],
    ):
        i = index.get(response_id)
        if i is None or topic_id not in leaf_col:
            continue  # a topic of another taxonomy version
        for level, j in ((leaf, leaf_col[topic_id]), (parent, parent_col.get(parent_id))):
            if j is None:
                continue
            level.mention[i, j] = True
            level.negative[i, j] |= sentiment == "negative"
            level.score[i, j] = max(level.score[i, j], score)
    comments = dict(
        store.query(
            "SELECT response_id, comment_masked FROM responses WHERE nps_category = 'detractor' "
            "AND topics <> '' AND response_date BETWEEN ? AND ?",
            [start, end],
        )
    )
    # terms × responses as integer pairs: a window of 100,000 responses has millions of term rows
    distinct_terms = "SELECT DISTINCT term_kind, term FROM terms WHERE response_date BETWEEN ? AND ?"
    term_names = [(kind, term) for kind, term in store.query(f"{distinct_terms} ORDER BY 1, 2", [start, end])]
    response_i, term_j = store.query_integers(
        f"""
        WITH names AS (
            SELECT term_kind, term, row_number() OVER (ORDER BY term_kind, term) - 1 AS j
            FROM ({distinct_terms}) d
        ), ids AS (
            SELECT response_id, row_number() OVER (ORDER BY response_id) - 1 AS i  -- as `rows` above
            FROM responses WHERE response_date BETWEEN ? AND ?
        )
        SELECT ids.i, names.j FROM terms t
        JOIN ids ON ids.response_id = t.response_id
        JOIN names ON names.term_kind = t.term_kind AND names.term = t.term
        WHERE t.response_date BETWEEN ? AND ?
        """,
        [start, end] * 3,
    )
    if len(response_i) and (int(response_i.max()) >= n or int(term_j.max()) >= len(term_names)):
        raise RuntimeError("term rows do not line up with the window's responses: check both ORDER BYs")
    term_matrix = sparse.csr_matrix(
        (np.ones(len(response_i)), (term_j, response_i)), shape=(len(term_names), n), dtype=np.float64
    )
    days = np.array([r[1].toordinal() for r in rows], dtype=np.int64)
    return WindowData(
        ids=ids,
        day=days,
        detractor=category == "detractor",
        promoter=category == "promoter",
        has_comment=np.array([bool(r[3]) for r in rows], dtype=bool),
        log_chars=np.log1p(np.array([r[4] for r in rows], dtype=np.float64)),
        month=Coded.of(np.array([r[1].year * 12 + r[1].month for r in rows], dtype=np.int64)),
        segments={name: Coded.of(values) for name, values in segments.items()},
        levels=[leaf, parent] if parents else [leaf],
        comments=comments,
        terms=term_matrix,
        term_names=term_names,
        id_rank=_ranks(ids),
    )


def _ranks(ids: NDArray[Any]) -> NDArray[np.int64]:
    """Rank of each id in Python's string order (the store's ORDER BY may collate differently)."""
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[sorted(range(len(ids)), key=lambda i: ids[i])] = np.arange(len(ids))
    return ranks


def _empty_level(name: str, ids: list[str], parents: list[str | None], n: int) -> TopicLevel:
    k = len(ids)
    return TopicLevel(
        name, ids, parents, np.zeros((n, k), dtype=bool), np.zeros((n, k), dtype=bool), np.zeros((n, k))
    )


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
    ) -> VolumeSeries:
        if not ends:
            return cls(0, {}, {})
        first = ends[0] - timedelta(days=(settings.previous_periods + 1) * max(settings.windows))
        last = ends[-1]
        origin = first.toordinal()
        length = last.toordinal() - origin + 1
        totals: dict[tuple[str, str], NDArray[np.int64]] = {}
        mentions: dict[tuple[str, str, str], NDArray[np.int64]] = {}

        def add(series: dict[Any, NDArray[np.int64]], key: Any, day: date, count: int) -> None:
            if key not in series:
                series[key] = np.zeros(length, dtype=np.int64)
            series[key][day.toordinal() - origin] += count

        span = [first, last]
        for day, count in store.query(
            "SELECT response_date, count(*) FROM responses WHERE response_date BETWEEN ? AND ? GROUP BY 1",
            span,
        ):
            add(totals, (ALL, ALL), day, count)
        for day, name, value, count in store.query(
            "SELECT response_date, segment_name, coalesce(segment_value, ?), count(*) FROM response_segments "
            "WHERE response_date BETWEEN ? AND ? GROUP BY 1, 2, 3",
            [BLANK_SEGMENT, *span],
        ):
            if name in segment_names:
                add(totals, (name, value), day, count)
        topic_sql = (
            "SELECT t.response_date, {cell}, t.{column}, count(DISTINCT t.response_id) "
            "FROM response_topics t "
            "{join} WHERE t.response_date BETWEEN ? AND ? AND t.taxonomy_version = ? GROUP BY 1, 2, 3, 4"
        )
        for column in ("topic_id", "parent_topic_id"):
            rows = store.query(
                topic_sql.format(cell="'all', 'all'", column=column, join=""), [*span, taxonomy.version]
            ) + store.query(
                topic_sql.format(
                    cell="g.segment_name, coalesce(g.segment_value, ?)",
                    column=column,
                    join="JOIN response_segments g ON g.response_id = t.response_id",
                ),
                [BLANK_SEGMENT, *span, taxonomy.version],
            )
            for day, name, value, topic, count in rows:
                if name == ALL or name in segment_names:
                    add(mentions, (name, value, topic), day, count)
        to_cumsum = {k: np.concatenate([[0], np.cumsum(v)]) for k, v in totals.items()}
        mention_cumsum = {k: np.concatenate([[0], np.cumsum(v)]) for k, v in mentions.items()}
        return cls(origin, to_cumsum, mention_cumsum)

    def _sum(self, series: NDArray[np.int64] | None, after: int, through: int) -> int:
        """Count over days in (after, through], as ordinals."""
        if series is None:
            return 0
        top = len(series) - 1

        def at(ordinal: int) -> int:  # responses on days up to and including ``ordinal``
            return int(series[min(max(ordinal - self.origin + 1, 0), top)])

        return at(through) - at(after)

    def previous(
        self, cell: tuple[str, str], topic: str, end: int, window: int, periods: int
    ) -> tuple[int, int]:
        """(mentions, responses) pooled over the ``periods`` windows before the one ending at ``end``."""
        after, through = end - (periods + 1) * window, end - window
        return (
            self._sum(self.mentions.get((*cell, topic)), after, through),
            self._sum(self.totals.get(cell), after, through),
        )


def window_rows(
    data: WindowData,
    end: date,
    window: int,
    settings: Settings,
    taxonomy: Taxonomy,
    volumes: VolumeSeries,
    lineage: Lineage,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Driver, example and term rows of one window (every segment cell and topic)."""
    cfg = settings.drivers
    z = z_value(settings.nps.confidence)
    in_window = (data.day > end.toordinal() - window) & (data.day <= end.toordinal())
    if not in_window.any():
        return [], [], []
    start = end - timedelta(days=window - 1)
    drivers: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    terms: list[dict[str, Any]] = []
    window_key = {"window_end": end, "window_days": window, "window_start": start}
    for (segment_name, segment_value), selected in _cells(data, in_window):
        cell = {**window_key, "segment_name": segment_name, "segment_value": segment_value}
        n = int(selected.sum())
        detractors = int((selected & data.detractor).sum())
        promoters = int((selected & data.promoter).sum())
        overall = nps_estimate(promoters, n - promoters - detractors, detractors, settings.nps.confidence)
        for level in data.levels:
            adjusted = _adjusted(data, selected, level, segment_name, window, cfg, z)
            counts = _LevelCounts.of(data, selected, level)
            for k, topic_id in enumerate(level.ids):
                n_t = int(counts.mentions[k])
                if n_t == 0:
                    continue
                row = _driver_row(counts, k, n, promoters, detractors, settings.nps.confidence)
                row.update(cell)
                row.update(topic_id=topic_id, topic_level=level.name, parent_topic_id=level.parents[k],
                           nps_all=overall.nps)  # fmt: skip
                row.update(adjusted.get(k, _NO_ADJUSTMENT))
                mentions_before, responses_before = volumes.previous(
                    (segment_name, segment_value), topic_id, end.toordinal(), window, cfg.previous_periods
                )
                row.update(_volume_change(n_t, n, mentions_before, responses_before))
                row["low_confidence"] = (
                    n_t < cfg.min_responses or row["detractors_mentioning"] < cfg.min_detractors
                )
                pulls_down = row["impact"] is not None and row["impact"] < 0
                chosen = (
                    _examples(data, selected & data.detractor & level.mention[:, k], level, k, cfg.examples)
                    if pulls_down and counts.detractors[k]
                    else []
                )
                row["example_response_ids"] = ",".join(data.ids[i] for i in chosen)
                for rank, i in enumerate(chosen, start=1):
                    examples.append({
                        **cell, "topic_id": topic_id, "example_rank": rank, "response_id": data.ids[i],
                        "response_date": date.fromordinal(int(data.day[i])),
                        "comment_masked": data.comments.get(data.ids[i], ""),
                    })  # fmt: skip
                drivers.append(row)
        terms.extend(_term_rows(data, selected, cell, cfg, z, taxonomy))
    _flag(drivers, cfg)
    lineage_columns = {
        "run_id": lineage.run_id,
        "config_hash": lineage.config_hash,
        "model_version": lineage.model_version,
        "taxonomy_version": lineage.taxonomy_version,
    }
    for row in drivers:
        row.update(lineage_columns)
    for example in examples:
        example.update(lineage_columns)
    for term in terms:
        term.update(lineage_columns, dictionary_version=lineage.dictionary_version)
    return drivers, examples, terms


def _cells(data: WindowData, in_window: Bool) -> Iterator[tuple[tuple[str, str], Bool]]:
    yield (ALL, ALL), in_window
    for name, coded in data.segments.items():
        for code in np.unique(coded.codes[in_window]):
            yield (name, coded.names[code]), in_window & (coded.codes == code)


@dataclass(frozen=True)
class _LevelCounts:
    """Per topic of a level, within a segment cell: mentions, and among them detractors,
    promoters and negative mentions (one pass over the cell for all topics at once)."""

    mentions: NDArray[np.int64]
    detractors: NDArray[np.int64]
    promoters: NDArray[np.int64]
    negative: NDArray[np.int64]

    @classmethod
    def of(cls, data: WindowData, selected: Bool, level: TopicLevel) -> _LevelCounts:
        rows = np.flatnonzero(selected)
        mention = level.mention[rows]
        return cls(
            mention.sum(axis=0),
            mention[data.detractor[rows]].sum(axis=0),
            mention[data.promoter[rows]].sum(axis=0),
            (mention & level.negative[rows]).sum(axis=0),
        )


def _driver_row(
    counts: _LevelCounts, k: int, n: int, promoters: int, detractors: int, confidence: float
) -> dict[str, Any]:
    z = z_value(confidence)
    n_t, d_t, p_t = int(counts.mentions[k]), int(counts.detractors[k]), int(counts.promoters[k])
    rest = (promoters - p_t, (n - n_t) - (promoters - p_t) - (detractors - d_t), detractors - d_t)
    n_rest = n - n_t
    est = nps_estimate(p_t, n_t - p_t - d_t, d_t, confidence)
    row: dict[str, Any] = {
        "responses": n,
        "detractors_all": detractors,
        "mentions": n_t,
        "prevalence": n_t / n,
        "promoters_mentioning": p_t,
        "detractors_mentioning": d_t,
        "nps_mentioning": est.nps,
        "nps_mentioning_ci_low": est.ci_low,
        "nps_mentioning_ci_high": est.ci_high,
        "nps_rest": 100.0 * (rest[0] - rest[2]) / n_rest if n_rest else None,
        "negative_mention_share": float(counts.negative[k]) / n_t,
        "detractor_share": d_t / detractors if detractors else None,
    }
    rate = wilson_interval(d_t, n_t, z)
    row.update(detractor_rate=rate.estimate, detractor_rate_ci_low=rate.low, detractor_rate_ci_high=rate.high)
    row["lift"] = rate.estimate / (detractors / n) if detractors else None
    if n_rest == 0:  # every response mentions it: nothing to compare with
        row.update(dict.fromkeys(_COMPARISON_COLUMNS))
        return row
    impact = topic_impact((p_t, n_t - p_t - d_t, d_t), rest, z)
    rr = relative_risk(d_t, n_t, rest[2], n_rest, z)
    odds = odds_ratio(d_t, n_t - d_t, rest[2], n_rest - rest[2], z)
    row.update(
        impact=impact.estimate, impact_ci_low=impact.low, impact_ci_high=impact.high, impact_p=impact.p_value,
        relative_risk=rr.estimate, relative_risk_ci_low=rr.low, relative_risk_ci_high=rr.high,
        relative_risk_p=rr.p_value,
        odds_ratio=odds.estimate, odds_ratio_ci_low=odds.low, odds_ratio_ci_high=odds.high,
        odds_ratio_p=odds.p_value,
    )  # fmt: skip
    return row


_COMPARISON_COLUMNS = (
    "impact", "impact_ci_low", "impact_ci_high", "impact_p", "relative_risk", "relative_risk_ci_low",
    "relative_risk_ci_high", "relative_risk_p", "odds_ratio", "odds_ratio_ci_low", "odds_ratio_ci_high",
    "odds_ratio_p",
)  # fmt: skip
_NO_ADJUSTMENT: dict[str, Any] = dict.fromkeys(
    ("adjusted_odds_ratio", "adjusted_odds_ratio_ci_low", "adjusted_odds_ratio_ci_high", "adjusted_impact",
     "adjusted_impact_ci_low", "adjusted_impact_ci_high", "adjusted_p")
)  # fmt: skip


def _adjusted(
    data: WindowData, selected: Bool, level: TopicLevel, segment_name: str, window: int,
    cfg: DriverSettings, z: float,
) -> dict[int, dict[str, Any]]:  # fmt: skip
    """Adjusted odds ratio and ΔNPS per topic column, or nothing when the cell is too small."""
    rows = np.flatnonzero(selected)
    detractor, promoter = data.detractor[rows], data.promoter[rows]
    if len(rows) < cfg.min_responses or min(detractor.sum(), promoter.sum()) < max(cfg.min_detractors, 1):
        return {}
    mention = level.mention[rows]
    topic_columns = [k for k in range(mention.shape[1]) if 0 < mention[:, k].sum() < len(rows)]
    if not topic_columns:
        return {}
    controls = [data.has_comment[rows].astype(np.float64), data.log_chars[rows] - data.log_chars[rows].mean()]
    for name, coded in data.segments.items():
        if name != segment_name:
            controls.extend(_dummies(coded, rows))
    if window > 31:
        controls.extend(_dummies(data.month, rows))
    x = np.column_stack([np.ones(len(rows)), mention[:, topic_columns].astype(np.float64), *controls])
    x = x[:, [0, *[j for j in range(1, x.shape[1]) if np.ptp(x[:, j]) > 0]]]  # constant controls add nothing
    positions = list(range(1, len(topic_columns) + 1))
    effects = adjusted_effects(x, detractor, promoter, positions, z, cfg.ridge)
    result = {}
    for position, k in zip(positions, topic_columns, strict=True):
        effect = effects.get(position)
        if effect is None:
            continue
        result[k] = {
            "adjusted_odds_ratio": effect.odds_ratio.estimate,
            "adjusted_odds_ratio_ci_low": effect.odds_ratio.low,
            "adjusted_odds_ratio_ci_high": effect.odds_ratio.high,
            "adjusted_impact": effect.delta_nps.estimate,
            "adjusted_impact_ci_low": effect.delta_nps.low,
            "adjusted_impact_ci_high": effect.delta_nps.high,
            "adjusted_p": effect.delta_nps.p_value,
        }
    return result


def _dummies(coded: Coded, rows: NDArray[np.int64]) -> list[NDArray[np.float64]]:
    """Indicator columns over ``rows`` for every value present but the most common (the reference
    level; ties go to the first in string order), in string order."""
    codes = coded.codes[rows]
    counts = np.bincount(codes, minlength=len(coded.names))
    present = [j for j in range(len(coded.names)) if counts[j]]
    reference = min(present, key=lambda j: (-counts[j], coded.names[j]))
    return [(codes == j).astype(np.float64) for j in present if j != reference]


def _volume_change(
    mentions: int, responses: int, mentions_before: int, responses_before: int
) -> dict[str, Any]:
    if responses_before == 0:
        return {"previous_prevalence": None, "volume_change_z": None, "volume_change_p": None}
    z, p = two_proportion_z(mentions, responses, mentions_before, responses_before)
    return {
        "previous_prevalence": mentions_before / responses_before,
        "volume_change_z": z,
        "volume_change_p": p,
    }


def _flag(rows: list[dict[str, Any]], cfg: DriverSettings) -> None:
    """q-values per method over the whole window, then the robust, rising and emerging flags."""
    for method in ("impact", "odds_ratio", "adjusted", "volume_change"):
        tested = [r for r in rows if r[f"{method}_p"] is not None]
        for row, q in zip(tested, benjamini_hochberg([r[f"{method}_p"] for r in tested]), strict=True):
            row[f"{method}_q"] = q
        for row in rows:
            row.setdefault(f"{method}_q", None)
    for row in rows:
        significant = all(
            row[f"{m}_q"] is not None and row[f"{m}_q"] < cfg.fdr
            for m in ("impact", "odds_ratio", "adjusted")
        )
        pulls_down = (
            significant and row["impact"] < 0 and row["odds_ratio"] > 1 and row["adjusted_impact"] < 0
        )
        lifts = significant and row["impact"] > 0 and row["odds_ratio"] < 1 and row["adjusted_impact"] > 0
        row["robust"] = (pulls_down or lifts) and not row["low_confidence"]
        row["rising"] = (
            row["volume_change_q"] is not None
            and row["volume_change_q"] < cfg.fdr
            and row["volume_change_z"] > 0
        )
        row["emerging"] = row["rising"] and row["previous_prevalence"] < cfg.rare_share


def _examples(data: WindowData, candidates: Bool, level: TopicLevel, k: int, limit: int) -> list[int]:
    """Up to ``limit`` detractor comments: the clearest mentions first (negative about the topic,
    highest topic score), skipping any too similar to one already chosen."""
    if limit == 0:
        return []
    rows = np.flatnonzero(candidates)
    # np.lexsort sorts by its last key first: negative about the topic, then score, then id
    order = rows[np.lexsort((data.id_rank[rows], -level.score[rows, k], ~level.negative[rows, k]))]
    chosen: list[int] = []
    shingles: list[frozenset[str]] = []
    for i in order:
        grams = data.bigrams(data.ids[i])
        if not grams:
            continue
        if any(len(grams & other) / max(len(grams | other), 1) > _SIMILAR for other in shingles):
            continue
        chosen.append(int(i))
        shingles.append(grams)
        if len(chosen) == limit:
            break
    return chosen


def _term_rows(
    data: WindowData,
    selected: Bool,
    cell: dict[str, Any],
    cfg: DriverSettings,
    z_crit: float,
    taxonomy: Taxonomy,
) -> list[dict[str, Any]]:
    """Terms detractors use more than promoters (weighted log-odds, pipeline/terms.py), with the
    topic that already covers each one, if any."""
    if cfg.terms_per_cell == 0 or not data.term_names:
        return []
    terms_t = data.terms
    background = terms_t @ selected.astype(np.float64)
    y_d = terms_t @ (selected & data.detractor).astype(np.float64)
    y_p = terms_t @ (selected & data.promoter).astype(np.float64)
    delta, z = log_odds_arrays(y_d, y_p, background)
    screened = np.flatnonzero(np.nan_to_num(z, nan=-np.inf) > z_crit)
    top = sorted((int(j) for j in screened), key=lambda j: (-z[j], data.term_names[j]))[: cfg.terms_per_cell]
    leaf = data.levels[0]
    result = []
    for rank, j in enumerate(top, start=1):
        kind, term = data.term_names[j]
        used_by = terms_t.indices[terms_t.indptr[j] : terms_t.indptr[j + 1]]
        users = used_by[selected[used_by]]
        if j not in data.seeded:
            data.seeded[j] = _seeded_topics(kind, term, leaf, taxonomy)
        topic, coverage, share = _covering_topic(data.seeded[j], leaf, users)
        result.append({
            **cell, "term_kind": kind, "term": term, "rank": rank, "responses_using": int(background[j]),
            "detractor_responses": int(y_d[j]), "promoter_responses": int(y_p[j]),
            "log_odds": float(delta[j]), "z": float(z[j]), "covered_by_topic_id": topic,
            "coverage": coverage, "co_mention_share": share,
        })  # fmt: skip
    return result


def _seeded_topics(kind: str, term: str, leaf: TopicLevel, taxonomy: Taxonomy) -> list[int]:
    """Leaf columns with a seed term equal to the term (or inside a noun phrase)."""
    return [
        k for k, topic_id in enumerate(leaf.ids)
        if any(seed == term or (kind == "noun_phrase" and seed in term)
               for seed in taxonomy.seed_lemmas[topic_id])
    ]  # fmt: skip


def _covering_topic(
    seeded: list[int], leaf: TopicLevel, users: NDArray[np.int64]
) -> tuple[str | None, str, float | None]:
    """A topic covers a term when the term is (or contains) one of its seed terms, or when at
    least half the responses that use the term mention it."""
    mentions = leaf.mention[users].sum(axis=0) if len(users) else np.zeros(len(leaf.ids))
    shares = mentions / max(len(users), 1)
    if seeded:
        k = max(seeded, key=lambda k: (shares[k], -k))
        return leaf.ids[k], "seed_term", float(shares[k])
    if len(users) and shares.max() >= 0.5:
        k = int(np.argmax(shares))
        return leaf.ids[k], "co_mention", float(shares[k])
    return None, "none", float(shares.max()) if len(users) else None
