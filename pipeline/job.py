"""The main job: one input file and a date scope in, replaced partitions and a run record out.

    read + validate → normalise (NFKC, PII mask, sentences) → tokenize → classify → write
    → aggregate (NPS per day) → drivers (rolling windows; pipeline/drivers.py)

Everything streams in chunks of ``source.chunk_rows``; the partitions a run covers are
replaced inside one transaction. The model comes in as a `SentencePredictor`, so this module
never loads one itself.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pipeline import __version__
from pipeline.classify import ResponseLabels, SentencePredictor, classify_chunk
from pipeline.contracts import BLANK_SEGMENT, Lineage, ProcessedResponse, QuarantinedRow, Response, Sentence
from pipeline.drivers import refresh_drivers
from pipeline.errors import ReasonCode, Stage
from pipeline.inference_cache import CachedPredictor
from pipeline.ingest import RowValidator, SourceInfo, chunked, describe_source, read_records
from pipeline.normalize import NORMALIZER_VERSION, MaskedText, clean_comment, split_sentences
from pipeline.nps import CI_METHOD, nps_estimate
from pipeline.settings import Settings
from pipeline.store import Store, open_store
from pipeline.taxonomy import Taxonomy
from pipeline.tokenize import dictionary_version, noun_phrases, tokenize

RunKind = Literal["run", "backfill", "nightly"]
NOUN_PHRASE_POS = "名詞-句"
STAGES = ("read_validate", "normalize", "tokenize", "classify", "write", "aggregate", "drivers")


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


@dataclass
class RunSummary:
    run_id: str
    kind: RunKind
    status: str
    source_name: str
    store_location: str
    scope: DateScope
    partitions: list[date] = field(default_factory=list)
    rows_read: int = 0
    rows_in: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    seconds_by_stage: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    predictions_computed: int = 0
    predictions_reused: int = 0
    # told the stage entered (None when it ends): lets a benchmark attribute memory to stages
    stage_listener: Callable[[str | None], None] | None = field(default=None, repr=False, compare=False)

    @property
    def rows_out_of_scope(self) -> int:
        return self.rows_read - self.rows_in


def normalize_response(response: Response) -> tuple[MaskedText, list[str]]:
    """The masked comment and its sentences."""
    masked = clean_comment(response.comment)
    return masked, split_sentences(masked.text)


def tokenize_response(response: Response, masked: MaskedText, sentences: list[str]) -> ProcessedResponse:
    tokenized = tuple(Sentence(i, text, tuple(tokenize(text))) for i, text in enumerate(sentences))
    return ProcessedResponse(response, masked.text, masked.pii_kinds, tokenized)


def process_response(response: Response) -> ProcessedResponse:
    """Normalise, mask and split the comment, and tokenize each sentence."""
    return tokenize_response(response, *normalize_response(response))


def make_run_id(
    source: SourceInfo, scope: DateScope, settings: Settings, kind: RunKind, predictor: SentencePredictor
) -> str:
    """Same input, scope, settings and versions → same id, so a re-run replaces its record."""
    parts = [source.sha256, str(scope.start), str(scope.end), settings.config_hash(), kind, __version__,
             NORMALIZER_VERSION, dictionary_version(), predictor.model_version,
             predictor.taxonomy_version]  # fmt: skip
    return "run-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def run_job(
    input_path: Path,
    settings: Settings,
    predictor: SentencePredictor,
    taxonomy: Taxonomy,
    scope: DateScope = DateScope(),
    kind: RunKind = "run",
    source_name: str | None = None,
    stage_listener: Callable[[str | None], None] | None = None,
) -> RunSummary:
    """Run the job over one input and return its summary; raises (after recording) on failure."""
    source = describe_source(input_path, settings.source)
    name = source_name or input_path.name
    if predictor.taxonomy_version != taxonomy.version:
        raise ValueError(f"model taxonomy {predictor.taxonomy_version} differs from {taxonomy.version}")
    run_id = make_run_id(source, scope, settings, kind, predictor)
    lineage = Lineage(run_id, settings.config_hash(), name, NORMALIZER_VERSION, dictionary_version(),
                      predictor.model_version, taxonomy.version)  # fmt: skip
    started_at = datetime.now(UTC)
    with open_store(settings.store) as store:
        summary = RunSummary(run_id, kind, "failed", name, store.location, scope)
        summary.stage_listener = stage_listener
        try:
            with store.transaction():
                _write_partitions(store, source, settings, scope, lineage, summary, predictor, taxonomy)
            summary.status = "succeeded"
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            with store.transaction():
                store.upsert_by_key("runs", _run_row(summary, source, lineage, started_at, error))
    return summary


@contextmanager
def _timed(summary: RunSummary, stage: str) -> Iterator[None]:
    if summary.stage_listener:
        summary.stage_listener(stage)
    start = time.perf_counter()
    try:
        yield
    finally:
        summary.seconds_by_stage[stage] += time.perf_counter() - start
        if summary.stage_listener:
            summary.stage_listener(None)


def _write_partitions(
    store: Store,
    source: SourceInfo,
    settings: Settings,
    scope: DateScope,
    lineage: Lineage,
    summary: RunSummary,
    predictor: SentencePredictor,
    taxonomy: Taxonomy,
) -> None:
    partitioned = (
        "responses",
        "response_segments",
        "sentences",
        "response_topics",
        "terms",
        "nps_daily",
        "quarantine",
    )
    cleared: set[date] = set()

    def clear(days: set[date]) -> None:
        new = days - cleared
        for table in partitioned:
            store.delete_partitions(table, new)
        cleared.update(new)

    # records with no readable date belong to every run of their source, and are keyed by run
    store.delete_where("quarantine", "response_date IS NULL AND run_id = ?", [lineage.run_id])
    clear(set(scope.days()))

    cached = CachedPredictor(predictor, store if settings.model.inference_cache else None, lineage.run_id)
    validator = RowValidator(settings.source)
    records = read_records(source, settings.source)
    while True:
        with _timed(summary, "read_validate"):
            chunk = next(chunked(records, settings.source.chunk_rows), None)
            if chunk is None:
                break
            accepted: list[Response] = []
            rejected: list[QuarantinedRow] = []
            for record in chunk:
                summary.rows_read += 1
                outcome = validator.validate(record)
                day = outcome.response_date
                if day is not None and not scope.contains(day):
                    continue
                summary.rows_in += 1
                (accepted if isinstance(outcome, Response) else rejected).append(outcome)  # type: ignore[arg-type]
        with _timed(summary, "normalize"):
            normalized = [(r, *normalize_response(r)) for r in accepted]
        with _timed(summary, "tokenize"):
            processed = [tokenize_response(r, masked, sentences) for r, masked, sentences in normalized]
        with _timed(summary, "classify"):
            labels = classify_chunk(processed, cached, taxonomy, settings.model.batch_size)
        with _timed(summary, "write"):
            clear(
                {p.response.response_date for p in processed}
                | {q.response_date for q in rejected if q.response_date}
            )
            _insert_chunk(store, processed, labels, rejected, lineage)
        summary.rows_published += len(processed)
        summary.rows_quarantined += len(rejected)
        summary.quarantine_reasons.update(q.reason.value for q in rejected)

    summary.predictions_computed = cached.counts.computed
    summary.predictions_reused = cached.counts.reused
    with _timed(summary, "write"):
        _quarantine_ids_published_elsewhere(store, lineage, summary)
    summary.partitions = sorted(cleared)
    with _timed(summary, "aggregate"):
        store.delete_partitions("topics", [taxonomy.version])
        store.insert("topics", topic_rows(taxonomy))
        store.insert("nps_daily", nps_daily_rows(store, summary.partitions, settings, lineage))
    with _timed(summary, "drivers"):
        refresh_drivers(store, summary.partitions, settings, taxonomy, lineage)


def _quarantine_ids_published_elsewhere(store: Store, lineage: Lineage, summary: RunSummary) -> None:
    """A response id that another run already published for a date outside this run's scope keeps
    that row; the new copy is quarantined, so an id never counts twice in the tables."""
    conflicts = store.query(
        """
        SELECT n.response_id, n.response_date, n.source_row, n.score, n.comment_masked,
               o.response_date, o.run_id
        FROM responses n JOIN responses o ON o.response_id = n.response_id AND o.run_id <> n.run_id
        WHERE n.run_id = ? ORDER BY n.source_row
        """,
        [lineage.run_id],
    )
    if not conflicts:
        return
    ids = [c[0] for c in conflicts]
    for table in ("responses", "response_segments", "sentences", "response_topics", "terms"):
        store.delete_where(table, "run_id = ? AND response_id = ANY(?)", [lineage.run_id, ids])
    rows = [
        {
            "source_name": lineage.source_name,
            "source_row": source_row,
            "response_date": day,
            "response_id": response_id,
            "stage": Stage.INGEST.value,
            "reason_code": ReasonCode.DUPLICATE_RESPONSE_ID.value,
            "detail": f"response id already published for {other_day} by {other_run}",
            "raw_payload": json.dumps({"score": score, "comment_masked": comment}, ensure_ascii=False),
            "run_id": lineage.run_id,
            "config_hash": lineage.config_hash,
        }
        for response_id, day, source_row, score, comment, other_day, other_run in conflicts
    ]
    store.insert("quarantine", rows)
    summary.rows_published -= len(rows)
    summary.rows_quarantined += len(rows)
    summary.quarantine_reasons[ReasonCode.DUPLICATE_RESPONSE_ID.value] += len(rows)


def topic_rows(taxonomy: Taxonomy) -> list[dict[str, Any]]:
    leaves = set(taxonomy.leaf_ids)
    return [
        {
            "taxonomy_version": taxonomy.version,
            "topic_id": t.id,
            "parent_topic_id": t.parent,
            "is_leaf": t.id in leaves,
            "label_ja": t.label_ja,
            "label_en": t.label_en,
            "description": t.description,
            "seed_terms": " ".join(sorted(taxonomy.seed_lemmas.get(t.id, ()))),
        }
        for t in taxonomy.topics
    ]


def _sentiment_columns(label: str | None, probabilities: tuple[float, float, float] | None) -> dict[str, Any]:
    p = probabilities or (None, None, None)
    return {"sentiment_label": label, "p_negative": p[0], "p_neutral": p[1], "p_positive": p[2]}


def _insert_chunk(
    store: Store,
    processed: list[ProcessedResponse],
    labels: list[ResponseLabels],
    rejected: list[QuarantinedRow],
    lineage: Lineage,
) -> None:
    responses, segments, sentences, response_topics, terms = [], [], [], [], []
    model_lineage = {"model_version": lineage.model_version, "taxonomy_version": lineage.taxonomy_version}
    text_lineage = {
        "run_id": lineage.run_id,
        "config_hash": lineage.config_hash,
        "normalizer_version": lineage.normalizer_version,
        "dictionary_version": lineage.dictionary_version,
        **model_lineage,
    }
    base = {"run_id": lineage.run_id, "config_hash": lineage.config_hash}
    for item, label in zip(processed, labels, strict=True):
        r = item.response
        responses.append(
            {
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
                **_sentiment_columns(label.sentiment, label.probabilities),
                "topics": ",".join(t.topic_id for t in label.topics),
                "source_name": lineage.source_name,
                "source_row": r.source_row,
                **text_lineage,
            }
        )
        for name, value in r.segments.items():
            segments.append(
                {
                    "response_id": r.response_id,
                    "response_date": r.response_date,
                    "segment_name": name,
                    "segment_value": value,
                    **base,
                }
            )
        term_counts: Counter[tuple[str, str]] = Counter()
        term_pos: dict[tuple[str, str], str] = {}
        for sentence, sentence_label in zip(item.sentences, label.sentences, strict=True):
            content = [t for t in sentence.tokens if t.is_content]
            sentences.append(
                {
                    "response_id": r.response_id,
                    "sentence_index": sentence.index,
                    "response_date": r.response_date,
                    "sentence_text": sentence.text,
                    "token_count": len(sentence.tokens),
                    "keywords": " ".join(t.lemma for t in content),
                    **_sentiment_columns(sentence_label.sentiment, sentence_label.probabilities),
                    "topics": ",".join(t.topic_id for t in sentence_label.topics),
                    **text_lineage,
                }
            )
            for token in content:
                term_counts["lemma", token.lemma] += 1
                term_pos.setdefault(("lemma", token.lemma), token.pos)
            for phrase in noun_phrases(list(sentence.tokens)):
                term_counts["noun_phrase", phrase] += 1
                term_pos.setdefault(("noun_phrase", phrase), NOUN_PHRASE_POS)
        for topic in label.topics:
            response_topics.append(
                {
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
                    **base,
                    **model_lineage,
                }
            )
        for (kind, term), count in sorted(term_counts.items()):
            terms.append(
                {
                    "response_id": r.response_id,
                    "response_date": r.response_date,
                    "term_kind": kind,
                    "term": term,
                    "pos": term_pos[kind, term],
                    "occurrences": count,
                    "nps_category": r.nps_category.value,
                    **base,
                    "dictionary_version": lineage.dictionary_version,
                }
            )
    quarantine = [
        {
            "source_name": lineage.source_name,
            "source_row": q.source_row,
            "response_date": q.response_date,
            "response_id": q.response_id,
            "stage": q.stage.value,
            "reason_code": q.reason.value,
            "detail": q.detail,
            "raw_payload": q.raw_payload,
            **base,
        }
        for q in rejected
    ]
    store.insert("responses", responses)
    store.insert("response_segments", segments)
    store.insert("sentences", sentences)
    store.insert("response_topics", response_topics)
    store.insert("terms", terms)
    store.insert("quarantine", quarantine)


def nps_daily_rows(
    store: Store, partitions: list[date], settings: Settings, lineage: Lineage
) -> list[dict[str, Any]]:
    """NPS per date for all responses and per segment value, from the rows just written."""
    if not partitions:
        return []
    counts = store.query(
        """
        WITH scoped AS (
            SELECT response_id, response_date, nps_category FROM responses
            WHERE response_date = ANY(?)
        ), cells AS (
            SELECT response_date, 'all' AS segment_name, 'all' AS segment_value, nps_category FROM scoped
            UNION ALL
            SELECT s.response_date, g.segment_name, coalesce(g.segment_value, ?), s.nps_category
            FROM scoped s JOIN response_segments g USING (response_id)
        )
        SELECT response_date, segment_name, segment_value,
               count(*) FILTER (WHERE nps_category = 'promoter'),
               count(*) FILTER (WHERE nps_category = 'passive'),
               count(*) FILTER (WHERE nps_category = 'detractor')
        FROM cells GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
        [partitions, BLANK_SEGMENT],
    )
    rows = []
    for day, segment_name, segment_value, promoters, passives, detractors in counts:
        estimate = nps_estimate(promoters, passives, detractors, settings.nps.confidence)
        rows.append(
            {
                "response_date": day,
                "segment_name": segment_name,
                "segment_value": segment_value,
                "responses": estimate.n,
                "promoters": promoters,
                "passives": passives,
                "detractors": detractors,
                "nps": estimate.nps,
                "nps_se": estimate.se,
                "nps_ci_low": estimate.ci_low,
                "nps_ci_high": estimate.ci_high,
                "ci_method": CI_METHOD,
                "run_id": lineage.run_id,
                "config_hash": lineage.config_hash,
            }
        )
    return rows


def _run_row(
    summary: RunSummary, source: SourceInfo, lineage: Lineage, started_at: datetime, error: str | None
) -> dict[str, Any]:
    return {
        "run_id": summary.run_id,
        "kind": summary.kind,
        "status": summary.status,
        "source_name": summary.source_name,
        "source_sha256": source.sha256,
        "scope_start": summary.scope.start,
        "scope_end": summary.scope.end,
        "partitions": len(summary.partitions),
        "rows_read": summary.rows_read,
        "rows_in": summary.rows_in,
        "rows_published": summary.rows_published,
        "rows_quarantined": summary.rows_quarantined,
        "rows_out_of_scope": summary.rows_out_of_scope,
        "started_at": started_at,
        "finished_at": datetime.now(UTC),
        "seconds_by_stage": json.dumps({k: round(v, 3) for k, v in summary.seconds_by_stage.items()}),
        "pipeline_version": __version__,
        "model_version": lineage.model_version,
        "taxonomy_version": lineage.taxonomy_version,
        "normalizer_version": lineage.normalizer_version,
        "dictionary_version": lineage.dictionary_version,
        "config_hash": lineage.config_hash,
        "error": error,
        "predictions_computed": summary.predictions_computed,
        "predictions_reused": summary.predictions_reused,
    }
