"""Response rows: the ``responses``, ``response_segments``, ``sentences`` and ``response_topics``
rows of each classified response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.classify import ResponseLabels, ResponseTopic
from pipeline.contracts import ProcessedResponse, Response
from pipeline.errors import Stage
from pipeline.inference_cache import text_key
from pipeline.stages import Chunk, Row


def sentiment_columns(label: str | None, probabilities: tuple[float, float, float] | None) -> Row:
    p: tuple[Any, Any, Any] = probabilities or (None, None, None)
    return {"sentiment_label": label, "p_negative": p[0], "p_neutral": p[1], "p_positive": p[2]}


def response_row(item: ProcessedResponse, label: ResponseLabels) -> Row:
    r = item.response
    return {
        "response_id": r.response_id,
        "response_date": r.response_date,
        "responded_at": r.responded_at,
        "score": r.score,
        "nps_category": r.nps_category.value,
        "comment_masked": item.comment_masked,
        "has_comment": bool(item.comment_masked),
        "comment_chars": len(item.comment_masked),
        "sentence_count": len(item.sentences),
        "pii_kinds": ",".join(k.value for k in item.pii_kinds),
        **sentiment_columns(label.sentiment, label.probabilities),
        "topics": ",".join(t.topic_id for t in label.topics),
        "source_row": r.source_row,
    }


def segment_rows(r: Response) -> list[Row]:
    return [
        {
            "response_id": r.response_id,
            "response_date": r.response_date,
            "segment_name": name,
            "segment_value": value,
        }
        for name, value in r.segments.items()
    ]


def sentence_rows(item: ProcessedResponse, label: ResponseLabels) -> list[Row]:
    r = item.response
    return [
        {
            "response_id": r.response_id,
            "sentence_index": sentence.index,
            "response_date": r.response_date,
            "sentence_text": sentence.text,
            "token_count": len(sentence.tokens),
            "keywords": " ".join(t.lemma for t in sentence.tokens if t.is_content),
            **sentiment_columns(sentence_label.sentiment, sentence_label.probabilities),
            "topics": ",".join(t.topic_id for t in sentence_label.topics),
            "text_sha256": text_key(sentence.text),
            "low_confidence": sentence_label.low_confidence,
        }
        for sentence, sentence_label in zip(item.sentences, label.sentences, strict=True)
    ]


def response_topic_row(r: Response, topic: ResponseTopic) -> Row:
    return {
        "response_id": r.response_id,
        "topic_id": topic.topic_id,
        "response_date": r.response_date,
        "parent_topic_id": topic.parent_id,
        "topic_score": topic.score,
        "sentence_count": topic.sentence_count,
        "topic_sentiment": topic.sentiment,
        "p_negative": topic.probabilities[0],
        "p_neutral": topic.probabilities[1],
        "p_positive": topic.probabilities[2],
        "evidence_terms": " ".join(topic.evidence),
        "score": r.score,
        "nps_category": r.nps_category.value,
    }


@dataclass
class ResponseRows:
    stage: Stage = Stage.WRITE

    def __call__(self, chunk: Chunk) -> Chunk:
        for item, label in zip(chunk.processed, chunk.labels, strict=True):
            chunk.rows["responses"].append(response_row(item, label))
            chunk.rows["response_segments"].extend(segment_rows(item.response))
            chunk.rows["sentences"].extend(sentence_rows(item, label))
            chunk.rows["response_topics"].extend(response_topic_row(item.response, t) for t in label.topics)
        return chunk
