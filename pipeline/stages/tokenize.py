"""Tokenize: each masked sentence into fugashi tokens (`pipeline.tokenize`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipeline.contracts import ProcessedResponse
from pipeline.errors import Stage
from pipeline.stages import Chunk
from pipeline.tokenize import tokenize


def tokenize_response(item: ProcessedResponse) -> ProcessedResponse:
    sentences = tuple(dataclasses.replace(s, tokens=tuple(tokenize(s.text))) for s in item.sentences)
    return dataclasses.replace(item, sentences=sentences)


@dataclass
class Tokenize:
    stage: Stage = Stage.TOKENIZE

    def __call__(self, chunk: Chunk) -> Chunk:
        chunk.processed = [tokenize_response(item) for item in chunk.processed]
        return chunk
