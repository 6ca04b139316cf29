"""Classification results as records: sentence sentiment and topics, then per-response roll-ups.

A model returns `Predictions` (probabilities only); this module turns them into labels with
documented rules, so the rules are testable without a model:

- A sentence's sentiment is the most probable of negative / neutral / positive. It is
  *low-confidence* when that probability is below ``model.low_confidence_below`` (default 0.6).
  The default model's probabilities are calibrated (`models.calibration`), so a label given
  with probability p is right about p of the time: below 0.6, about one in two such labels is
  wrong, and an analyst should read those sentences before quoting them.
- A sentence mentions a topic when the topic's probability reaches the model's threshold.
  Its evidence terms are the sentence's content-word lemmas that are seed terms of the topic;
  an empty list means the encoder alone recognised the topic.
- A response's sentiment probabilities are the mean of its sentences' probabilities, each
  sentence weighted by its number of content words (at least 1), so 「ありがとうございました。」
  does not outweigh a sentence that says what went wrong. The label is the most probable
  class. A comment with no sentences has no sentiment (NULL), never a made-up neutral.
- A response's topics are the union of its sentences' topics. A topic's sentiment in the
  response is the same weighted mean over only the sentences that mention it; its score is the
  highest probability among the response's sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.contracts import SENTIMENT_LABELS, Predictions, ProcessedResponse, SentimentLabel
from pipeline.settings import LOW_CONFIDENCE_BELOW
from pipeline.taxonomy import Taxonomy


class SentencePredictor(Protocol):
    """What the job needs from a model: versions for lineage, and probabilities for sentences."""

    @property
    def model_version(self) -> str: ...

    @property
    def taxonomy_version(self) -> str: ...

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> Predictions: ...


@dataclass(frozen=True, slots=True)
class SentenceTopic:
    topic_id: str
    score: float
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SentenceLabels:
    sentiment: SentimentLabel
    probabilities: tuple[float, float, float]
    topics: tuple[SentenceTopic, ...]
    weight: int  # content words, at least 1
    low_confidence: bool = False  # the label's probability is below the low-confidence line


@dataclass(frozen=True, slots=True)
class ResponseTopic:
    topic_id: str
    parent_id: str | None
    score: float
    sentence_count: int
    sentiment: SentimentLabel
    probabilities: tuple[float, float, float]
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResponseLabels:
    sentiment: SentimentLabel | None
    probabilities: tuple[float, float, float] | None
    sentences: tuple[SentenceLabels, ...]
    topics: tuple[ResponseTopic, ...]


def classify_chunk(
    responses: Sequence[ProcessedResponse],
    predictor: SentencePredictor,
    taxonomy: Taxonomy,
    batch_size: int = 32,
    low_confidence_below: float = LOW_CONFIDENCE_BELOW,
) -> list[ResponseLabels]:
    """Classify every sentence of a chunk once (identical sentences share one prediction)."""
    unique = sorted({s.text for r in responses for s in r.sentences})
    row_of = {text: i for i, text in enumerate(unique)}
    predicted = predictor.predict(unique, batch_size) if unique else None
    results = []
    for response in responses:
        sentence_labels = []
        for sentence in response.sentences:
            assert predicted is not None
            i = row_of[sentence.text]
            lemmas = [t.lemma for t in sentence.tokens if t.is_content]
            sentence_labels.append(
                label_sentence(
                    predicted.sentiment[i],
                    predicted.topics[i],
                    predicted,
                    lemmas,
                    taxonomy,
                    low_confidence_below,
                )
            )
        results.append(roll_up(sentence_labels, taxonomy))
    return results


def label_sentence(
    sentiment: np.ndarray,
    topic_probs: np.ndarray,
    predicted: Predictions,
    lemmas: Sequence[str],
    taxonomy: Taxonomy,
    low_confidence_below: float = LOW_CONFIDENCE_BELOW,
) -> SentenceLabels:
    probabilities = (float(sentiment[0]), float(sentiment[1]), float(sentiment[2]))
    present = set(lemmas)
    topics = []
    for j, topic_id in enumerate(predicted.topic_ids):
        if topic_probs[j] >= predicted.topic_threshold[j]:
            seeds = taxonomy.seed_lemmas.get(topic_id, frozenset())
            evidence = tuple(sorted(present & seeds))
            topics.append(SentenceTopic(topic_id, float(topic_probs[j]), evidence))
    return SentenceLabels(
        sentiment=SENTIMENT_LABELS[int(np.argmax(sentiment))],
        probabilities=probabilities,
        topics=tuple(topics),
        weight=max(1, len(lemmas)),
        low_confidence=max(probabilities) < low_confidence_below,
    )


def weighted_sentiment(
    sentences: Sequence[SentenceLabels],
) -> tuple[SentimentLabel, tuple[float, float, float]]:
    weights = np.array([s.weight for s in sentences], dtype=float)
    probs = np.array([s.probabilities for s in sentences]) * weights[:, None]
    mean = probs.sum(axis=0) / weights.sum()
    return SENTIMENT_LABELS[int(np.argmax(mean))], (float(mean[0]), float(mean[1]), float(mean[2]))


def roll_up(sentences: Sequence[SentenceLabels], taxonomy: Taxonomy) -> ResponseLabels:
    if not sentences:
        return ResponseLabels(None, None, (), ())
    label, probabilities = weighted_sentiment(sentences)
    topic_ids = sorted({t.topic_id for s in sentences for t in s.topics})
    topics = []
    for topic_id in topic_ids:
        mentioning = [s for s in sentences if any(t.topic_id == topic_id for t in s.topics)]
        mentions = [t for s in mentioning for t in s.topics if t.topic_id == topic_id]
        topic_label, topic_probs = weighted_sentiment(mentioning)
        topics.append(
            ResponseTopic(
                topic_id=topic_id,
                parent_id=taxonomy.parent_of(topic_id),
                score=max(t.score for t in mentions),
                sentence_count=len(mentioning),
                sentiment=topic_label,
                probabilities=topic_probs,
                evidence=tuple(sorted({e for t in mentions for e in t.evidence})),
            )
        )
    return ResponseLabels(label, probabilities, tuple(sentences), tuple(topics))
