"""What a run did, as the CLI, the flows and the ``runs`` table report it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from pipeline.classify import ResponseLabels
from pipeline.contracts import DateScope, QuarantinedRow
from pipeline.errors import Stage
from pipeline.progress import Progress, no_progress

RunKind = Literal["run", "backfill", "nightly"]
RunStatus = Literal["succeeded", "failed"]


@dataclass
class RunSummary:
    run_id: str
    kind: RunKind
    status: RunStatus
    source_name: str
    store_location: str
    scope: DateScope
    partitions: list[date] = field(default_factory=list)
    rows_read: int = 0
    rows_in: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    # the masked payload of the first record quarantined for each reason: an example for messages
    quarantine_examples: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    seconds_by_stage: dict[Stage, float] = field(default_factory=lambda: dict.fromkeys(Stage, 0.0))
    predictions_computed: int = 0
    predictions_reused: int = 0
    sentences_classified: int = 0
    sentences_low_confidence: int = 0  # whose sentiment label is low-confidence (pipeline/classify.py)
    # told the stage entered (None when it ends): lets a benchmark attribute memory to stages
    stage_listener: Callable[[str | None], None] | None = field(default=None, repr=False, compare=False)
    # told how far each stage has got (`pipeline.progress`): a display of a long run
    progress: Progress = field(default=no_progress, repr=False, compare=False)
    # when each stage was first entered and last left (wall clock): shows parallel runs overlapping
    stage_times: dict[str, tuple[float, float]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def rows_out_of_scope(self) -> int:
        return self.rows_read - self.rows_in

    @property
    def low_confidence_share(self) -> float | None:
        if not self.sentences_classified:
            return None
        return self.sentences_low_confidence / self.sentences_classified

    def count_sentences(self, labels: Sequence[ResponseLabels]) -> None:
        sentences = [s for label in labels for s in label.sentences]
        self.sentences_classified += len(sentences)
        self.sentences_low_confidence += sum(s.low_confidence for s in sentences)

    def count_quarantined(self, rows: Sequence[QuarantinedRow]) -> None:
        self.rows_quarantined += len(rows)
        for row in rows:
            self.quarantine_reasons[row.reason.value] += 1
            self.quarantine_examples.setdefault(row.reason.value, row.raw_payload)

    @contextmanager
    def timed(self, stage: Stage) -> Iterator[None]:
        """Time the block under ``stage`` (stages run once per chunk, so times add up)."""
        if self.stage_listener:
            self.stage_listener(stage.value)
        start, wall_start = time.perf_counter(), time.time()
        try:
            yield
        finally:
            self.seconds_by_stage[stage] += time.perf_counter() - start
            first = self.stage_times.get(stage.value, (wall_start, wall_start))[0]
            self.stage_times[stage.value] = (first, time.time())
            if self.stage_listener:
                self.stage_listener(None)
