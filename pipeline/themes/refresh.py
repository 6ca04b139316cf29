"""Theme discovery over the store: roll back to the first date a run replaced, replay every date
from there to the newest, and rewrite the theme tables.

State as of a date is a function of the tables (``theme_events`` and ``theme_sentences`` before
it, and the published sentences), so a run that replaces dates in the middle of the history
rolls back to its first date and replays the days after it: nightly runs and one backfill leave
the same themes with the same ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np

from pipeline.contracts import Lineage
from pipeline.errors import Stage
from pipeline.progress import Progress, no_progress
from pipeline.schema import lineage_columns
from pipeline.settings import ThemeSettings
from pipeline.store import Store
from pipeline.themes import label
from pipeline.themes.discover import discover_day, novel, recent
from pipeline.themes.sentences import (
    SentenceBatch,
    read_responses_sentences,
    read_sentences,
    with_enough_keywords,
)
from pipeline.themes.state import Member, Theme, ThemeEvent, ThemeState, ThemeStatus, unit_mean

INSERT_EVERY = 50_000  # membership rows held before they are inserted


def refresh_themes(
    store: Store,
    partitions: Sequence[date],
    settings: ThemeSettings,
    lineage: Lineage,
    progress: Progress = no_progress,
) -> date | None:
    """Replay theme discovery from the first of ``partitions`` to the newest response date;
    returns the last date replayed (None when nothing was). ``progress`` counts the dates."""
    if not settings.enabled or not partitions:
        return None
    start = min(partitions)
    days = [d for (d,) in store.query(
        "SELECT DISTINCT response_date FROM responses WHERE response_date >= ? ORDER BY 1", [start]
    )]  # fmt: skip
    roll_back(store, start, lineage.model_version)
    state = load_state(store, start, settings, lineage.model_version)
    progress(Stage.THEMES, 0, len(days), "dates")
    for replayed, day in enumerate(days, start=1):
        batch = with_enough_keywords(
            read_sentences(store, day, day, lineage.model_version), settings.min_keywords
        )
        discover_day(state, day, batch, settings)
        if len(state.member_rows) >= INSERT_EVERY:
            _insert_changes(store, state, lineage)
        progress(Stage.THEMES, replayed, len(days), "dates")
    _insert_changes(store, state, lineage)
    last = days[-1] if days else start - timedelta(days=1)
    write_themes(store, state, last, settings, lineage)
    return days[-1] if days else None


def roll_back(store: Store, start: date, model_version: str) -> None:
    """Forget what discovery decided on ``start`` and after."""
    store.delete_where("theme_sentences", "assigned_on >= ? AND model_version = ?", [start, model_version])
    store.delete_where("theme_events", "event_date >= ? AND model_version = ?", [start, model_version])


def load_state(store: Store, start: date, settings: ThemeSettings, model_version: str) -> ThemeState:
    """The state at the end of the day before ``start``, from the theme tables and the sentences."""
    state = ThemeState()
    for theme_id, day, event, related in sorted(store.query(
        "SELECT theme_id, event_date, event, related_theme_id FROM theme_events WHERE model_version = ?",
        [model_version],
    ), key=lambda r: (r[1], r[0], r[2])):  # fmt: skip
        _apply_event(state, theme_id, day, ThemeEvent(event), related)
    members = _load_members(store, state, settings, model_version)
    state.members = members
    before = start - timedelta(days=1)
    loaded = read_sentences(store, start - timedelta(days=2 * settings.pool_days), before, model_version)
    loaded = with_enough_keywords(loaded, settings.min_keywords)
    state.history = recent(loaded, before, settings.pool_days)
    state.pool = _pool_as_of(loaded, members, start, settings)
    return state


def _pool_as_of(
    loaded: SentenceBatch, members: set[tuple[str, int]], start: date, settings: ThemeSettings
) -> SentenceBatch:
    """The sentences of the ``pool_days`` before ``start`` that were novel when they came (judged
    against the ``pool_days`` before each) and that no theme has taken since."""
    keep: list[int] = []
    for offset in range(settings.pool_days, 0, -1):
        day = (start - timedelta(days=offset)).toordinal()
        today = np.flatnonzero(loaded.days == day)
        history = loaded.take(np.flatnonzero((loaded.days < day) & (loaded.days >= day - settings.pool_days)))
        fresh = novel(loaded.take(today), history, settings)
        keep += [int(i) for i in today[fresh] if loaded.keys[i] not in members]
    return loaded.take(keep)


def _apply_event(state: ThemeState, theme_id: str, day: date, event: ThemeEvent, related: str | None) -> None:
    if event is ThemeEvent.CREATED:
        state.themes[theme_id] = Theme(theme_id, day, day, np.zeros(0, dtype=np.float32))  # see _load_members
        return
    theme = state.themes[theme_id]
    if event is ThemeEvent.MERGED:
        theme.merged_into, theme.merged_on = related, day
    else:
        theme.faded_on = day if event is ThemeEvent.FADED else None


def _load_members(
    store: Store, state: ThemeState, settings: ThemeSettings, model_version: str
) -> set[tuple[str, int]]:
    """Give each theme its member count, last assignment and newest members, counting for every
    theme those of the themes merged into it (as the replay does when they merge); returns every
    member's key."""
    rows = store.query(
        "SELECT theme_id, assigned_on, response_date, response_id, sentence_index FROM theme_sentences "
        "WHERE model_version = ?",
        [model_version],
    )
    by_theme: dict[str, list[tuple[date, date, str, int]]] = defaultdict(list)
    founding: dict[str, list[tuple[date, date, str, int]]] = defaultdict(list)
    for theme_id, assigned_on, day, response_id, index in rows:
        order = (assigned_on, day, response_id, int(index))
        if assigned_on == state.themes[theme_id].created_on:
            founding[theme_id].append(order)
        for holder in _merge_chain(state, theme_id):
            by_theme[holder].append(order)
    newest = {tid: sorted(orders)[-settings.recent_sentences :] for tid, orders in by_theme.items()}
    wanted = [o for orders in [*newest.values(), *founding.values()] for o in orders]
    found = _member_sentences(store, wanted, model_version)
    for theme_id, orders in founding.items():
        state.themes[theme_id].centroid = unit_mean(np.stack([found[o].vector for o in orders if o in found]))
    for theme_id, orders in by_theme.items():
        theme = state.themes[theme_id]
        theme.sentences = len(orders)
        theme.last_assigned = max(theme.last_assigned, max(o[0] for o in orders))
        theme.recent = [found[o] for o in newest[theme_id] if o in found]
    return {(r[3], int(r[4])) for r in rows}


def _merge_chain(state: ThemeState, theme_id: str) -> list[str]:
    """The theme, the theme it merged into, and so on to the open one."""
    chain = [theme_id]
    while (merged_into := state.themes[chain[-1]].merged_into) is not None:
        chain.append(merged_into)
    return chain


def _member_sentences(
    store: Store, orders: list[tuple[date, date, str, int]], model_version: str
) -> dict[tuple[date, date, str, int], Member]:
    if not orders:
        return {}
    by_key = {(o[2], o[3]): o for o in orders}
    batch = read_responses_sentences(store, sorted({o[2] for o in orders}), model_version)
    return {
        by_key[key]: Member(
            by_key[key], batch.texts[i], batch.keywords[i], bool(batch.topics[i]), batch.vectors[i].copy()
        )
        for i, key in enumerate(batch.keys)
        if key in by_key
    }


def _insert_changes(store: Store, state: ThemeState, lineage: Lineage) -> None:
    for table, rows in (("theme_sentences", state.member_rows), ("theme_events", state.event_rows)):
        stamp = lineage_columns(table, lineage)
        store.insert(table, [row | stamp for row in rows])
    state.member_rows, state.event_rows = [], []


def write_themes(
    store: Store, state: ThemeState, last: date, settings: ThemeSettings, lineage: Lineage
) -> None:
    """Rewrite the ``themes`` and ``theme_examples`` rows of the model version as of ``last``."""
    store.delete_where("themes", "model_version = ?", [lineage.model_version])
    store.delete_where("theme_examples", "model_version = ?", [lineage.model_version])
    themes = sorted((t for t in state.themes.values() if t.recent), key=lambda t: (t.created_on, t.theme_id))
    window = read_sentences(store, last - timedelta(days=settings.pool_days - 1), last, lineage.model_version)
    topics = label.topic_centroids(window.vectors, window.topics)
    phrases = label.key_phrases(themes, state.pool.texts, settings.key_phrases)
    theme_rows, example_rows = [], []
    for theme in themes:
        theme_rows.append(_theme_row(theme, phrases[theme.theme_id], topics, last, settings))
        example_rows += _example_rows(theme, settings.examples)
    store.insert("themes", [r | lineage_columns("themes", lineage) for r in theme_rows])
    store.insert("theme_examples", [r | lineage_columns("theme_examples", lineage) for r in example_rows])


def _theme_row(
    theme: Theme, phrases: list[str], topics: label.TopicCentroids, last: date, settings: ThemeSettings
) -> dict[str, Any]:
    nearest_topic, similarity = topics.nearest(theme.centroid)
    covered = label.covered_share(theme)
    status = (
        ThemeStatus.MERGED
        if theme.merged_into
        else ThemeStatus.FADING
        if theme.faded_on
        else ThemeStatus.ACTIVE
    )
    return {
        "theme_id": theme.theme_id, "label": " / ".join(phrases[:3]), "key_phrases": ",".join(phrases),
        "status": status, "created_on": theme.created_on, "last_seen": theme.last_assigned,
        "merged_into": theme.merged_into, "merged_on": theme.merged_on, "faded_on": theme.faded_on,
        "sentences": theme.sentences, "covered_share": covered, "covered": covered >= settings.covered_share,
        "nearest_topic_id": nearest_topic, "nearest_topic_similarity": similarity, "as_of": last,
    }  # fmt: skip


def _example_rows(theme: Theme, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "theme_id": theme.theme_id,
            "example_rank": rank,
            "response_id": member.order[2],
            "sentence_index": member.order[3],
            "response_date": member.order[1],
            "sentence_text": member.text,
            "similarity": similarity,
        }
        for rank, (member, similarity) in enumerate(label.examples(theme, limit), start=1)
    ]


__all__ = ["SentenceBatch", "load_state", "refresh_themes", "roll_back", "write_themes"]
