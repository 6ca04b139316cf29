"""Terms: each response's content-word lemmas and noun phrases with their counts, the rows of the
``terms`` table that detractor terms are computed from."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pipeline.contracts import ProcessedResponse, TermKind
from pipeline.errors import Stage
from pipeline.stages import Chunk, Row
from pipeline.tokenize import noun_phrases

NOUN_PHRASE_POS = "名詞-句"


def term_rows(item: ProcessedResponse) -> list[Row]:
    """One row per distinct (kind, term) in the response, in sorted order."""
    counts: Counter[tuple[TermKind, str]] = Counter()
    pos: dict[tuple[TermKind, str], str] = {}
    for sentence in item.sentences:
        for token in sentence.tokens:
            if token.is_content:
                counts[TermKind.LEMMA, token.lemma] += 1
                pos.setdefault((TermKind.LEMMA, token.lemma), token.pos)
        for phrase in noun_phrases(list(sentence.tokens)):
            counts[TermKind.NOUN_PHRASE, phrase] += 1
            pos.setdefault((TermKind.NOUN_PHRASE, phrase), NOUN_PHRASE_POS)
    response = item.response
    return [
        {
            "response_id": response.response_id,
            "response_date": response.response_date,
            "term_kind": kind.value,
            "term": term,
            "pos": pos[kind, term],
            "occurrences": count,
            "nps_category": response.nps_category.value,
        }
        for (kind, term), count in sorted(counts.items())
    ]


@dataclass
class Terms:
    stage: Stage = Stage.TERMS

    def __call__(self, chunk: Chunk) -> Chunk:
        for item in chunk.processed:
            chunk.rows["terms"].extend(term_rows(item))
        return chunk
