"""Normalize: each comment NFKC-normalised, PII-masked and split into sentences
(`pipeline.normalize`); tokens come in the next stage."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.contracts import ProcessedResponse, Response, Sentence
from pipeline.errors import Stage
from pipeline.normalize import clean_comment, split_sentences
from pipeline.stages import Chunk


def normalize_response(response: Response) -> ProcessedResponse:
    """The response with its masked comment and sentences, not yet tokenized."""
    masked = clean_comment(response.comment)
    sentences = tuple(Sentence(i, text, ()) for i, text in enumerate(split_sentences(masked.text)))
    return ProcessedResponse(response, masked.text, masked.pii_kinds, sentences)


@dataclass
class Normalize:
    stage: Stage = Stage.NORMALIZE

    def __call__(self, chunk: Chunk) -> Chunk:
        chunk.processed = [normalize_response(r) for r in chunk.accepted]
        return chunk
