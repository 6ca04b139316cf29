"""Theme discovery's state between days: the themes with their newest members, the pool of
sentences no theme holds yet, and what each day changed (memberships and events) waiting to be
written."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipeline.themes.sentences import SentenceBatch, SentenceKey


class ThemeStatus(StrEnum):
    """A theme's ``status`` in the themes table."""

    ACTIVE = "active"
    FADING = "fading"
    MERGED = "merged"


class ThemeEvent(StrEnum):
    """What happened to a theme on a day (the theme_events table's ``event``)."""

    CREATED = "created"  # a new cluster of sentences no theme held
    MERGED = "merged"  # its centroid came within themes.merge_similarity of an older theme's
    FADED = "faded"  # no new sentence for themes.fade_days
    REVIVED = "revived"  # a new sentence after fading


@dataclass(frozen=True)
class Member:
    """A sentence of a theme, kept while it is among the theme's newest (centroid, label, examples)."""

    order: tuple[date, date, str, int]  # (assigned_on, response date, response id, sentence index)
    text: str
    keywords: str
    covered: bool
    vector: NDArray[np.float32]


@dataclass
class Theme:
    """A theme and what discovery keeps of it. Its centroid is the mean of the sentences it
    started from and never moves: a centroid that followed its newest sentences would drift
    towards whatever is common, take ever more sentences and look like a rising problem."""

    theme_id: str
    created_on: date
    last_assigned: date
    centroid: NDArray[np.float32]  # L2-normalised
    sentences: int = 0  # members ever assigned, merged themes' included
    recent: list[Member] = field(default_factory=list)  # the newest, in `Member.order`
    merged_into: str | None = None
    merged_on: date | None = None
    faded_on: date | None = None  # set while fading; cleared when revived

    @property
    def is_open(self) -> bool:
        return self.merged_into is None

    def add(self, members: list[Member], keep: int) -> None:
        self.recent = sorted([*self.recent, *members], key=lambda m: m.order)[-keep:]
        self.sentences += len(members)
        if members:
            self.last_assigned = max(self.last_assigned, max(m.order[0] for m in members))


def unit_mean(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """The L2-normalised mean of row vectors."""
    mean = vectors.mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)


def theme_id_for(created_on: date, keys: list[SentenceKey]) -> str:
    """A stable id: the creation date and a hash of the founding sentences."""
    digest = hashlib.sha256("|".join(f"{r}#{i}" for r, i in sorted(keys)).encode()).hexdigest()[:6]
    return f"T{created_on:%Y%m%d}-{digest}"


def member_of(batch: SentenceBatch, i: int, assigned_on: date) -> Member:
    response_id, index = batch.keys[i]
    return Member(
        (assigned_on, date.fromordinal(int(batch.days[i])), response_id, index),
        batch.texts[i],
        batch.keywords[i],
        bool(batch.topics[i]),
        batch.vectors[i].copy(),  # a view would keep the whole day's (or history's) matrix alive
    )


@dataclass
class ThemeState:
    themes: dict[str, Theme] = field(default_factory=dict)
    pool: SentenceBatch = field(default_factory=SentenceBatch.empty)  # unassigned and novel, newest pool_days
    history: SentenceBatch = field(default_factory=SentenceBatch.empty)  # every sentence, newest pool_days
    members: set[SentenceKey] = field(default_factory=set)  # every sentence some theme holds
    member_rows: list[dict[str, Any]] = field(default_factory=list)
    event_rows: list[dict[str, Any]] = field(default_factory=list)

    def open_themes(self) -> list[Theme]:
        """Themes not merged away, oldest first (the same order however the state was built)."""
        return sorted(
            (t for t in self.themes.values() if t.is_open), key=lambda t: (t.created_on, t.theme_id)
        )

    def record(self, theme: Theme, day: date, event: ThemeEvent, related: str | None = None) -> None:
        self.event_rows.append(
            {"theme_id": theme.theme_id, "event_date": day, "event": event.value, "related_theme_id": related}
        )

    def assign(
        self,
        theme: Theme,
        batch: SentenceBatch,
        index: list[int],
        similarity: NDArray[np.float32],
        day: date,
        keep: int,
    ) -> None:
        """Make sentences ``index`` of ``batch`` (``similarity`` to the theme's centroid) members
        of ``theme`` as of ``day``."""
        if not index:
            return
        if theme.faded_on is not None:
            theme.faded_on = None
            self.record(theme, day, ThemeEvent.REVIVED)
        for i, sim in zip(index, similarity, strict=True):
            response_id, sentence_index = batch.keys[i]
            self.members.add(batch.keys[i])
            self.member_rows.append({
                "response_id": response_id, "sentence_index": sentence_index,
                "response_date": date.fromordinal(int(batch.days[i])), "theme_id": theme.theme_id,
                "assigned_on": day, "similarity": float(sim),
            })  # fmt: skip
        theme.add([member_of(batch, i, day) for i in index], keep)
