"""Tokenize: each masked sentence into fugashi tokens (`pipeline.tokenize`)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.contracts import ProcessedResponse, Sentence
from pipeline.errors import Stage
from pipeline.stages import Chunk
from pipeline.tokenize import tokenize


def tokenize_response(item: ProcessedResponse) -> ProcessedResponse:
    # plain constructors: dataclasses.replace costs several times as much, once per sentence
    sentences = tuple(Sentence(s.index, s.text, tuple(tokenize(s.text))) for s in item.sentences)
    return ProcessedResponse(item.response, item.comment_masked, item.pii_kinds, sentences)


@dataclass
class Tokenize:
    stage: Stage = Stage.TOKENIZE

    def __call__(self, chunk: Chunk) -> Chunk:
        chunk.processed = [tokenize_response(item) for item in chunk.processed]
        return chunk
