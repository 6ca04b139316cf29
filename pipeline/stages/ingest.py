"""Ingest: validate each record and keep those dated inside the run's scope."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.contracts import DateScope, QuarantinedRow, Response
from pipeline.errors import Stage
from pipeline.stages import Chunk, Row
from pipeline.validate import RowValidator


@dataclass
class Validate:
    """Records become responses or quarantine rows; a record dated outside ``scope`` belongs to
    another run and is skipped. The validator remembers ids across chunks (duplicates)."""

    validator: RowValidator
    scope: DateScope
    stage: Stage = Stage.INGEST

    def __call__(self, chunk: Chunk) -> Chunk:
        for record in chunk.records:
            outcome = self.validator.validate(record)
            if outcome.response_date is not None and not self.scope.contains(outcome.response_date):
                chunk.out_of_scope += 1
            elif isinstance(outcome, Response):
                chunk.accepted.append(outcome)
            else:
                chunk.quarantined.append(outcome)
        chunk.rows["quarantine"].extend(quarantine_row(q) for q in chunk.quarantined)
        return chunk


def quarantine_row(row: QuarantinedRow) -> Row:
    return {
        "source_row": row.source_row,
        "response_date": row.response_date,
        "response_id": row.response_id,
        "stage": row.stage.value,
        "reason_code": row.reason.value,
        "detail": row.detail,
        "raw_payload": row.raw_payload,
    }
