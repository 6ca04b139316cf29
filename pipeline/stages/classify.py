"""Classify: sentence sentiment and topics from the model, rolled up per response
(`pipeline.classify`). Predictions already in the inference cache are reused; new ones become
``inference_cache`` and ``sentence_vectors`` rows, published with the run's other rows."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.classify import classify_chunk
from pipeline.errors import Stage
from pipeline.inference_cache import CachedPredictor
from pipeline.stages import Chunk
from pipeline.taxonomy import Taxonomy


@dataclass
class Classify:
    predictor: CachedPredictor
    taxonomy: Taxonomy
    batch_size: int
    low_confidence_below: float
    stage: Stage = Stage.CLASSIFY

    def __call__(self, chunk: Chunk) -> Chunk:
        chunk.labels = classify_chunk(
            chunk.processed, self.predictor, self.taxonomy, self.batch_size, self.low_confidence_below
        )
        for table, rows in self.predictor.take_rows().items():
            chunk.rows[table].extend(rows)
        return chunk
