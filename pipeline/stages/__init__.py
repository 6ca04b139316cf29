"""The stages a chunk of responses travels through: components over one `Chunk`.

    ingest → normalize → tokenize → classify → terms → response rows

Each component takes the chunk, adds what it computes (validated responses, masked text,
tokens, labels, result rows) and returns the same chunk, the way a spaCy component takes and
returns a ``Doc``. The run loop (`pipeline.job`) only sequences them, timing each under its
`Stage`. A new stage is one module here with one component, plus one line in
`pipeline.job.components`.

Components add result rows to ``chunk.rows`` by table name, without lineage: the staging area
(`pipeline.staging`) stamps each row with the lineage columns its table documents.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.classify import ResponseLabels
from pipeline.contracts import ProcessedResponse, QuarantinedRow, Response, SourceRecord
from pipeline.errors import Stage

Row = dict[str, Any]


@dataclass
class Chunk:
    """One chunk of source records and everything the stages have made of it so far."""

    records: list[SourceRecord]
    accepted: list[Response] = field(default_factory=list)  # valid and in the run's dates
    quarantined: list[QuarantinedRow] = field(default_factory=list)  # in the run's dates
    out_of_scope: int = 0  # records dated outside the run's dates: left alone
    processed: list[ProcessedResponse] = field(default_factory=list)  # one per accepted response
    labels: list[ResponseLabels] = field(default_factory=list)  # one per processed response
    rows: defaultdict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))

    @property
    def rows_in(self) -> int:
        return len(self.accepted) + len(self.quarantined)


class Component(Protocol):
    """One stage: reads what earlier stages added to the chunk and adds its own part."""

    stage: Stage

    def __call__(self, chunk: Chunk) -> Chunk: ...
