"""Typed records passed between stages. Enum values reach result tables, so they are stable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np

from pipeline.errors import ReasonCode, Stage
from pipeline.normalize import PiiKind
from pipeline.tokenize import Token

# segment_value for responses whose segment cell was empty, in aggregates and driver tables
BLANK_SEGMENT = "(blank)"


@dataclass(frozen=True, slots=True)
class DateScope:
    """Dates a run covers. No bounds: every date found in the input."""

    start: date | None = None
    end: date | None = None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ValueError("a date scope needs both ends or neither")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"scope starts {self.start} after it ends {self.end}")

    @classmethod
    def single(cls, day: date) -> DateScope:
        return cls(day, day)

    @property
    def is_bounded(self) -> bool:
        return self.start is not None

    def contains(self, day: date) -> bool:
        if self.start is None or self.end is None:
            return True
        return self.start <= day <= self.end

    def days(self) -> list[date]:
        if self.start is None or self.end is None:
            return []
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


@dataclass(frozen=True, slots=True)
class Lineage:
    """What every result row of a run is stamped with."""

    run_id: str
    config_hash: str
    source_name: str
    normalizer_version: str
    dictionary_version: str
    model_version: str
    taxonomy_version: str


class TermKind(StrEnum):
    """What a ``terms`` row counts (its ``term_kind``)."""

    LEMMA = "lemma"  # a content word's dictionary form
    NOUN_PHRASE = "noun_phrase"  # consecutive nouns, joined (`pipeline.tokenize.noun_phrases`)


class NpsCategory(StrEnum):
    PROMOTER = "promoter"  # 9-10
    PASSIVE = "passive"  # 7-8
    DETRACTOR = "detractor"  # 0-6


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as read from the source, before validation.

    ``fields`` maps source column names to values; it is None when the record could not be
    parsed at all, and then ``problem`` says why and ``raw`` holds the text that was read.
    """

    source_row: int  # line number in text files (header is line 1), sheet row in xlsx, row number in Parquet
    fields: dict[str, Any] | None
    raw: str = ""
    problem: tuple[ReasonCode, str] | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A validated survey response; the comment is still the raw text, while the id and the
    segment values are already as stored (`pipeline.validate`)."""

    response_id: str  # a keyed pseudonym when the source id holds personal data
    source_row: int
    responded_at: datetime  # aware, UTC
    response_date: date  # local date in the configured time zone: the partition key
    score: int
    comment: str
    segments: dict[str, str | None]

    @property
    def nps_category(self) -> NpsCategory:
        return nps_category(self.score)


@dataclass(frozen=True, slots=True)
class QuarantinedRow:
    source_row: int
    stage: Stage
    reason: ReasonCode
    detail: str
    raw_payload: str  # JSON of the source record, PII-masked and truncated
    response_id: str | None = None
    response_date: date | None = None


@dataclass(frozen=True, slots=True)
class Sentence:
    index: int
    text: str  # masked
    tokens: tuple[Token, ...]


@dataclass(frozen=True, slots=True)
class ProcessedResponse:
    """A response after normalisation and tokenization: everything here is safe to store."""

    response: Response
    comment_masked: str
    pii_kinds: tuple[PiiKind, ...]
    sentences: tuple[Sentence, ...]


class SentimentLabel(StrEnum):
    """A sentence's or a response's sentiment; the order is the model's probability columns."""

    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


# The labels in the order of `Predictions.sentiment`'s columns (and of a model's sentiment head).
SENTIMENT_LABELS: tuple[SentimentLabel, ...] = tuple(SentimentLabel)


@dataclass(frozen=True, slots=True)
class Predictions:
    """What a model returns for n sentences: probabilities only, no labels yet."""

    sentiment: np.ndarray  # [n, 3] probabilities in SENTIMENT_LABELS order
    topics: np.ndarray  # [n, T] independent probabilities in topic_ids order
    topic_ids: tuple[str, ...]
    topic_threshold: np.ndarray  # [T]: a sentence mentions topic j when topics[:, j] >= this
    # [n, H] L2-normalised sentence vectors the heads were applied to (theme discovery clusters
    # them); None from a predictor that has none
    vectors: np.ndarray | None = None


def nps_category(score: int) -> NpsCategory:
    if not 0 <= score <= 10:
        raise ValueError(f"NPS scores run from 0 to 10, got {score}")
    if score >= 9:
        return NpsCategory.PROMOTER
    if score >= 7:
        return NpsCategory.PASSIVE
    return NpsCategory.DETRACTOR
