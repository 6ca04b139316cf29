"""The documented rules that turn probabilities into sentence and response labels."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.classify import (
    SentenceLabels,
    SentenceTopic,
    classify_chunk,
    label_sentence,
    roll_up,
    weighted_sentiment,
)
from pipeline.contracts import SENTIMENT_LABELS, ProcessedResponse, Response, Sentence, SentimentLabel
from pipeline.normalize import clean_comment, split_sentences
from pipeline.taxonomy import Taxonomy
from pipeline.tokenize import tokenize
from tests.fakes import CuePredictor


def sentence(probs: tuple[float, float, float], weight: int, *topics: str) -> SentenceLabels:
    label = SENTIMENT_LABELS[int(np.argmax(probs))]
    return SentenceLabels(label, probs, tuple(SentenceTopic(t, 0.9, ()) for t in topics), weight)


def response(comment: str) -> Response:
    from datetime import UTC, date, datetime

    return Response("R1", 2, datetime(2026, 7, 1, tzinfo=UTC), date(2026, 7, 1), 5, comment, {})


def process_response(response: Response) -> ProcessedResponse:
    """The comment masked, split and tokenized, as the job's normalize and tokenize stages do."""
    masked = clean_comment(response.comment)
    sentences = split_sentences(masked.text)
    tokenized = tuple(Sentence(i, text, tuple(tokenize(text))) for i, text in enumerate(sentences))
    return ProcessedResponse(response, masked.text, masked.pii_kinds, tokenized)


def test_sentiment_labels_keep_their_table_values_and_order() -> None:
    assert [label.value for label in SentimentLabel] == ["negative", "neutral", "positive"]
    assert SENTIMENT_LABELS == ("negative", "neutral", "positive")


def test_topic_sentiment_comes_from_its_own_sentences(taxonomy: Taxonomy) -> None:
    # 料金は高いけど。スタッフは親切。
    labels = roll_up(
        [sentence((0.8, 0.1, 0.1), 2, "price"), sentence((0.1, 0.1, 0.8), 2, "staff_attitude")], taxonomy
    )
    by_topic = {t.topic_id: t for t in labels.topics}
    assert by_topic["price"].sentiment == "negative"
    assert by_topic["staff_attitude"].sentiment == "positive"
    assert by_topic["price"].parent_id == "money"
    assert {t.topic_id for t in labels.topics} == {"price", "staff_attitude"}


def test_response_sentiment_is_the_content_weighted_mean() -> None:
    # a long complaint outweighs a short thank-you
    label, probs = weighted_sentiment([sentence((0.7, 0.2, 0.1), 5), sentence((0.0, 0.2, 0.8), 1)])
    assert label == "negative"
    assert probs == pytest.approx(((0.7 * 5 + 0.0) / 6, 0.2, (0.1 * 5 + 0.8) / 6))


def test_empty_comment_has_no_sentiment(taxonomy: Taxonomy) -> None:
    labels = roll_up([], taxonomy)
    assert labels.sentiment is None and labels.probabilities is None and labels.topics == ()


def test_chunk_classification_with_evidence(taxonomy: Taxonomy) -> None:
    predictor = CuePredictor(taxonomy)
    processed = [
        process_response(response("料金は高い。スタッフは親切でした。")),
        process_response(response("")),
    ]
    first, empty = classify_chunk(processed, predictor, taxonomy)
    assert [s.sentiment for s in first.sentences] == ["negative", "positive"]
    topics = {t.topic_id: t for t in first.topics}
    assert topics["price"].sentiment == "negative" and "料金" in topics["price"].evidence
    assert (
        topics["staff_attitude"].sentiment == "positive" and "スタッフ" in topics["staff_attitude"].evidence
    )
    assert empty.sentiment is None


def test_identical_sentences_are_classified_once(taxonomy: Taxonomy) -> None:
    predictor = CuePredictor(taxonomy)
    processed = [process_response(response("特になし")) for _ in range(5)]
    classify_chunk(processed, predictor, taxonomy)
    assert predictor.calls == [1]


@pytest.mark.parametrize(
    ("probabilities", "below", "flagged"),
    [((0.5, 0.3, 0.2), 0.6, True), ((0.7, 0.2, 0.1), 0.6, False), ((0.1, 0.6, 0.3), 0.6, False),
     ((0.1, 0.6, 0.3), 0.65, True)],
)  # fmt: skip
def test_low_confidence_is_the_label_probability_under_the_line(
    taxonomy: Taxonomy, probabilities: tuple[float, float, float], below: float, flagged: bool
) -> None:
    predicted = CuePredictor(taxonomy).predict(["配送が遅い"])
    labels = label_sentence(
        np.array(probabilities), predicted.topics[0], predicted, ["配送"], taxonomy, below
    )
    assert labels.low_confidence is flagged
    assert labels.sentiment == SENTIMENT_LABELS[int(np.argmax(probabilities))]
