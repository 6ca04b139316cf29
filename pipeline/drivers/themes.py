"""Per-window statistics of discovered themes (``theme_windows``) and of what the taxonomy does
not cover (``coverage``), computed cell by cell with the drivers' own statistics.

A theme is one more kind of driver row: a response mentions it when one of its sentences joined
it. Rows of a window end count the themes as they stood on that day: themes created by then,
with the themes merged by then counted under the theme they merged into, so a backfill leaves
the rows the nightly runs left. The rising test compares the window with the previous periods,
as for topics, but only over days since the theme was created: only from then on did every new
sentence have the same chance to join it (before, its sentences were taken by other themes or
gathered by another rule), so a theme is never "rising" just for having started. Until a whole
window of its own history precedes the window, the test is not run: a new theme is flagged new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from pipeline.drivers.load import Mask, WindowData
from pipeline.drivers.rows import LevelCounts, is_low_confidence, volume_change_columns
from pipeline.drivers.volumes import VolumeSeries
from pipeline.nps import nps_estimate, z_value
from pipeline.schema import table_specs
from pipeline.settings import Settings
from pipeline.stats import benjamini_hochberg, topic_impact
from pipeline.store import Store

Rows = list[dict[str, Any]]


@dataclass
class ThemeLevel:
    """The themes of one day as driver columns (`pipeline.drivers.rows.Mentions`); a theme has no
    sentiment of its own, so no mention counts as negative."""

    ids: list[str]
    mention: Mask
    negative: Mask


@dataclass
class ThemeHistory:
    """A batch's theme memberships (responses × themes as created) and the themes' events."""

    ids: list[str]
    mention: Mask  # responses × ids
    created: dict[str, date]
    merges: list[tuple[date, str, str]]  # (day, theme, into), by day
    fades: list[tuple[date, str, bool]]  # (day, theme, faded?), by day
    sentences: np.ndarray  # per response: sentences, and those without a topic
    uncovered: np.ndarray
    column: dict[str, int] = field(init=False)  # theme id → its column in ``mention``

    def __post_init__(self) -> None:
        self.column = {t: j for j, t in enumerate(self.ids)}

    @classmethod
    def load(
        cls, store: Store, data: WindowData, first: date, last: date, model_version: str
    ) -> ThemeHistory:
        index = {rid: i for i, rid in enumerate(data.ids)}
        events = store.query(
            "SELECT theme_id, event_date, event, related_theme_id FROM theme_events WHERE model_version = ?",
            [model_version],
        )
        ids = sorted(t for t, _, event, _ in events if event == "created")
        column = {t: j for j, t in enumerate(ids)}
        mention = np.zeros((len(data.ids), len(ids)), dtype=bool)
        for response_id, theme_id in store.query(
            "SELECT response_id, theme_id FROM theme_sentences WHERE model_version = ? "
            "AND response_date BETWEEN ? AND ?",
            [model_version, first, last],
        ):
            if response_id in index and theme_id in column:
                mention[index[response_id], column[theme_id]] = True
        sentences, uncovered = _sentence_counts(store, first, last, index)
        return cls(
            ids, mention, {t: d for t, d, e, _ in events if e == "created"},
            sorted((d, t, r) for t, d, e, r in events if e == "merged"),
            sorted((d, t, e == "faded") for t, d, e, _ in events if e in ("faded", "revived")),
            sentences, uncovered,
        )  # fmt: skip

    def survivors_on(self, end: date) -> dict[str, str]:
        """Each theme created by ``end`` → the theme it counts under on that day."""
        into = {t: t for t in self.ids if self.created[t] <= end}
        for day, theme, target in self.merges:
            if day <= end and theme in into:
                into[theme] = target
        for theme in into:
            while into[theme] != theme and into.get(into[theme], into[theme]) != into[theme]:
                into[theme] = into[into[theme]]
        return into

    def fading_on(self, end: date) -> set[str]:
        state: dict[str, bool] = {}
        for day, theme, faded in self.fades:
            if day <= end:
                state[theme] = faded
        return {t for t, faded in state.items() if faded}

    def level_on(self, end: date, window: Mask) -> tuple[ThemeLevel, dict[str, list[str]]]:
        """The themes of ``end`` that responses in ``window`` mention, as driver columns, and the
        original themes each one counts (only those columns: a window mentions few of them)."""
        into = self.survivors_on(end)
        mentioned = np.asarray(self.mention[window].any(axis=0), dtype=bool)
        into = {t: s for t, s in into.items() if mentioned[self.column[t]]}
        members: dict[str, list[str]] = {}
        for theme, survivor in sorted(into.items()):
            members.setdefault(survivor, []).append(theme)
        ids = sorted(members)
        rows = np.flatnonzero(window)
        mention = np.zeros((len(self.mention), len(ids)), dtype=bool)
        for k, survivor in enumerate(ids):
            columns = np.array([self.column[t] for t in members[survivor]], dtype=np.int64)
            mention[rows, k] = self.mention[np.ix_(rows, columns)].any(axis=1)
        return ThemeLevel(ids, mention, np.zeros_like(mention)), members


def _sentence_counts(
    store: Store, first: date, last: date, index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    sentences = np.zeros(len(index), dtype=np.int64)
    uncovered = np.zeros(len(index), dtype=np.int64)
    for response_id, total, without in store.query(
        "SELECT response_id, count(*), count(*) FILTER (WHERE topics = '') FROM sentences "
        "WHERE response_date BETWEEN ? AND ? GROUP BY 1",
        [first, last],
    ):
        if response_id in index:
            sentences[index[response_id]], uncovered[index[response_id]] = total, without
    return sentences, uncovered


def theme_window_rows(
    data: WindowData,
    history: ThemeHistory,
    cells: list[tuple[dict[str, Any], Mask]],
    settings: Settings,
    volumes: VolumeSeries,
) -> Rows:
    """The theme_windows rows of one window: every theme a cell's responses mention."""
    if not cells:
        return []
    key = cells[0][0]
    end, window = key["window_end"], key["window_days"]
    level, originals = history.level_on(end, cells[0][1])
    fading = history.fading_on(end)
    rows: Rows = []
    for cell_key, selected in cells:
        counts = LevelCounts.of(data, selected, level)
        n = int(selected.sum())
        promoters, detractors = int((selected & data.promoter).sum()), int((selected & data.detractor).sum())
        for k, theme_id in enumerate(level.ids):
            if counts.mentions[k] == 0:
                continue
            row = theme_statistics(counts, k, (n, promoters, detractors), settings.nps.confidence) | cell_key
            row["theme_id"] = theme_id
            row["nps_all"] = 100.0 * (promoters - detractors) / n
            created = history.created[theme_id]
            tracked = created.toordinal()
            before = volumes.previous_of(
                (cell_key["segment_name"], cell_key["segment_value"]), originals[theme_id], end.toordinal(),
                window, settings.drivers.previous_periods, since=tracked,
            )  # fmt: skip
            row.update(volume_change_columns(int(counts.mentions[k]), n, *before))
            row["new"] = created > end - timedelta(days=window)
            row["fading"] = theme_id in fading
            row["low_confidence"] = is_low_confidence(row, settings.drivers)
            rows.append(row)
    _flag(rows, settings.drivers.fdr)
    columns = set(table_specs()["theme_windows"].column_names)
    return [{k: v for k, v in row.items() if k in columns} for row in rows]


def theme_statistics(
    counts: LevelCounts, k: int, cell: tuple[int, int, int], confidence: float
) -> dict[str, Any]:
    """The theme_windows subset of a driver row (`pipeline.drivers.rows.driver_row`): NPS among
    the mentions and the rest, and the remove-the-theme impact, for column ``k``; ``cell`` is
    the cell's (responses, promoters, detractors). A window has many themes, so the relative
    risk and odds ratio the drivers table adds are left out."""
    n, promoters, detractors = cell
    n_t, d_t, p_t = int(counts.mentions[k]), int(counts.detractors[k]), int(counts.promoters[k])
    rest = (promoters - p_t, (n - n_t) - (promoters - p_t) - (detractors - d_t), detractors - d_t)
    estimate = nps_estimate(p_t, n_t - p_t - d_t, d_t, confidence)
    row: dict[str, Any] = {
        "responses": n, "detractors_all": detractors, "mentions": n_t, "prevalence": n_t / n,
        "promoters_mentioning": p_t, "detractors_mentioning": d_t, "nps_mentioning": estimate.nps,
        "nps_mentioning_ci_low": estimate.ci_low, "nps_mentioning_ci_high": estimate.ci_high,
        "nps_rest": 100.0 * (rest[0] - rest[2]) / (n - n_t) if n > n_t else None,
        "detractor_share": d_t / detractors if detractors else None,
    }  # fmt: skip
    if n == n_t:  # every response mentions it: nothing to compare with
        return row | dict.fromkeys(("impact", "impact_ci_low", "impact_ci_high", "impact_p"))
    impact = topic_impact((p_t, n_t - p_t - d_t, d_t), rest, z_value(confidence))
    return row | {"impact": impact.estimate, "impact_ci_low": impact.low, "impact_ci_high": impact.high,
                  "impact_p": impact.p_value}  # fmt: skip


def _flag(rows: Rows, fdr: float) -> None:
    """q-values of impact and volume change over the window's theme rows, and the rising flag:
    the topics' test, on rows that are not low-confidence (a z test on a dozen mentions of a
    theme days old is no evidence; on the planted benchmark every false alarm was one)."""
    for method in ("impact", "volume_change"):
        tested = [r for r in rows if r.get(f"{method}_p") is not None]
        for row, q in zip(tested, benjamini_hochberg([r[f"{method}_p"] for r in tested]), strict=True):
            row[f"{method}_q"] = q
    for row in rows:
        q_value, z = row.get("volume_change_q"), row.get("volume_change_z")
        significant = q_value is not None and q_value < fdr and z is not None and z > 0
        row["rising"] = significant and not row["low_confidence"]


def coverage_row(
    data: WindowData, history: ThemeHistory, key: dict[str, Any], selected: Mask
) -> dict[str, Any]:
    """What the taxonomy leaves uncovered in one cell of a window."""
    leaf = data.levels[0]
    commented = selected & data.has_comment & (history.sentences > 0)
    uncovered = commented & ~leaf.mention.any(axis=1)
    sentences = int(history.sentences[selected].sum())
    without = int(history.uncovered[selected].sum())
    detractors = commented & data.detractor
    return key | {
        "sentences": sentences,
        "sentences_uncovered": without,
        "sentence_uncovered_share": without / sentences if sentences else None,
        "responses_commented": int(commented.sum()),
        "responses_uncovered": int(uncovered.sum()),
        "response_uncovered_share": int(uncovered.sum()) / int(commented.sum()) if commented.any() else None,
        "detractors_commented": int(detractors.sum()),
        "detractors_uncovered": int((uncovered & data.detractor).sum()),
        "detractor_uncovered_share": (
            int((uncovered & data.detractor).sum()) / int(detractors.sum()) if detractors.any() else None
        ),
    }
