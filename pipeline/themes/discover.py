"""One day of theme discovery: the day's sentences join the themes they are close to, the rest
wait in the pool, the pool is clustered for new themes, and themes that became one merge and
themes nobody mentions any more fade.

Everything is a function of the sentences up to the day and the state the day before, in a
fixed order (date, response id, sentence index), so running the days one night at a time and
running them all in one backfill give the same themes with the same ids.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
from numpy.typing import NDArray

from pipeline.settings import ThemeSettings
from pipeline.themes.cluster import find_clusters
from pipeline.themes.sentences import SentenceBatch
from pipeline.themes.state import Theme, ThemeEvent, ThemeState, theme_id_for, unit_mean


def discover_day(state: ThemeState, day: date, batch: SentenceBatch, settings: ThemeSettings) -> None:
    """Advance ``state`` by the day's sentences ``batch`` (already filtered for discovery)."""
    left = batch.take(_assign_to_themes(state, day, batch, settings))
    fresh = left.take(np.flatnonzero(novel(left, state.history, settings)))
    state.history = recent(SentenceBatch.concat([state.history, batch]), day, settings.pool_days)
    state.pool = recent(SentenceBatch.concat([state.pool, fresh]), day, settings.pool_days)
    _start_themes(state, day, settings)
    _merge_themes(state, day, settings)
    _fade_themes(state, day, settings)


def nearest(
    vectors: NDArray[np.float32], themes: list[Theme]
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Per vector, the position of the most similar theme in ``themes`` and the similarity."""
    if not themes or not len(vectors):
        return np.zeros(len(vectors), dtype=np.int64), np.full(len(vectors), -1.0, dtype=np.float32)
    similarity = vectors @ np.stack([t.centroid for t in themes]).T
    best = similarity.argmax(axis=1)
    return best, similarity[np.arange(len(vectors)), best]


def _assign_to_themes(
    state: ThemeState, day: date, batch: SentenceBatch, settings: ThemeSettings
) -> list[int]:
    """Sentences close enough to an open theme join it; returns the positions of the rest."""
    themes = state.open_themes()
    best, similarity = nearest(batch.vectors, themes)
    joined = similarity >= settings.assign_similarity
    for k, theme in enumerate(themes):
        index = np.flatnonzero(joined & (best == k)).tolist()
        state.assign(theme, batch, index, similarity[index], day, settings.recent_sentences)
    return np.flatnonzero(~joined).tolist()


def recent(batch: SentenceBatch, day: date, days: int) -> SentenceBatch:
    """The sentences of the ``days`` days to ``day``."""
    oldest = (day - timedelta(days=days - 1)).toordinal()
    return batch.take(np.flatnonzero(batch.days >= oldest))


def novel(batch: SentenceBatch, history: SentenceBatch, settings: ThemeSettings) -> NDArray[np.bool_]:
    """Per sentence, whether no sentence of ``history`` (the newest ``max_history`` distinct
    ones) reaches ``novelty_similarity``: a problem nobody named starts as sentences unlike the
    weeks before; everyday comments repeat what was said last week."""
    if not len(history) or not len(batch):
        return np.ones(len(batch), dtype=bool)
    newest = {text: i for i, text in enumerate(history.texts)}  # the last occurrence of each text
    kept = sorted(newest.values())[-settings.max_history :]
    similarity = batch.vectors @ history.vectors[kept].T
    return similarity.max(axis=1) < settings.novelty_similarity


def _start_themes(state: ThemeState, day: date, settings: ThemeSettings) -> None:
    """Cluster the newest ``max_pool`` pool sentences; each tight cluster joins the open theme
    its centroid is close to, or starts a new one. Members leave the pool."""
    pool = state.pool
    first = max(0, len(pool) - settings.max_pool)
    for cluster in find_clusters(pool.vectors[first:], settings.min_cluster_size, settings.dimensions):
        members = _tight_core(pool, cluster + first, settings)
        if members is None:
            continue
        centroid = unit_mean(pool.vectors[members])
        best, similarity = nearest(centroid[None, :], state.open_themes())
        index = members.tolist()
        if similarity[0] >= settings.assign_similarity:
            theme = state.open_themes()[int(best[0])]
            state.assign(theme, pool, index, pool.vectors[index] @ centroid, day, settings.recent_sentences)
            continue
        theme = Theme(theme_id_for(day, [pool.keys[i] for i in members]), day, day, centroid)
        state.themes[theme.theme_id] = theme
        state.record(theme, day, ThemeEvent.CREATED)
        state.assign(theme, pool, index, pool.vectors[index] @ centroid, day, settings.recent_sentences)
        gathered = _gather_recent(state, theme, day, settings)
        theme.centroid = unit_mean(np.concatenate([pool.vectors[index], state.history.vectors[gathered]]))
    state.pool = pool.take([i for i, key in enumerate(pool.keys) if key not in state.members])


def _gather_recent(state: ThemeState, theme: Theme, day: date, settings: ThemeSettings) -> list[int]:
    """A new theme also takes the sentences of the last ``pool_days`` that no theme holds and
    that are close to it, novel or not: its counts before today then cover the same span with
    the same rule as after, and the rising test does not mistake its start for growth."""
    history = state.history
    free = [i for i, key in enumerate(history.keys) if key not in state.members]
    similarity = history.vectors[free] @ theme.centroid if free else np.zeros(0, dtype=np.float32)
    close = [(i, s) for i, s in zip(free, similarity, strict=True) if s >= settings.assign_similarity]
    index = [i for i, _ in close]
    state.assign(theme, history, index, np.array([s for _, s in close]), day, settings.recent_sentences)
    return index


def _tight_core(
    pool: SentenceBatch, cluster: NDArray[np.int64], settings: ThemeSettings
) -> NDArray[np.int64] | None:
    """The cluster's sentences within ``assign_similarity`` of its centroid, when enough remain
    and they are not one sentence repeated: the same rule that later sentences join by."""
    centroid = unit_mean(pool.vectors[cluster])
    core = cluster[pool.vectors[cluster] @ centroid >= settings.assign_similarity]
    distinct = {pool.texts[i] for i in core}
    if len(core) < settings.min_cluster_size or len(distinct) < max(2, settings.min_cluster_size // 2):
        return None
    return core


def _merge_themes(state: ThemeState, day: date, settings: ThemeSettings) -> None:
    """An open theme whose centroid is within ``merge_similarity`` of an older open theme's
    merges into it (older: created first, then the smaller id)."""
    themes = sorted(state.open_themes(), key=lambda t: (t.created_on, t.theme_id))
    for k, younger in enumerate(themes):
        older = [t for t in themes[:k] if t.is_open]
        best, similarity = nearest(younger.centroid[None, :], older)
        if similarity[0] >= settings.merge_similarity:
            survivor = older[int(best[0])]
            younger.merged_into, younger.merged_on = survivor.theme_id, day
            survivor.sentences += younger.sentences - len(younger.recent)
            survivor.add(younger.recent, settings.recent_sentences)
            state.record(younger, day, ThemeEvent.MERGED, survivor.theme_id)


def _fade_themes(state: ThemeState, day: date, settings: ThemeSettings) -> None:
    for theme in state.open_themes():
        if theme.faded_on is None and (day - theme.last_assigned).days >= settings.fade_days:
            theme.faded_on = day
            state.record(theme, day, ThemeEvent.FADED)
