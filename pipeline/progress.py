"""Progress of long runs: the contract the job and training report through, and the reporters.

A run over 100,000 responses takes minutes. The job (`pipeline.job`), publishing and training
tell a `Progress` callback how far each stage has got: ``progress(stage, done, total, unit)``,
``total`` None while it is not known (a CSV's record count is known only once it is read: a
quoted comment may span lines, so reading counts bytes of the file's size instead). It is
called once per chunk and stage, per replayed date, per training batch: it must be cheap.

Who watches chooses the reporter (`progress_reporter` for the CLI; the flows give `LogLines`
Prefect's run logger):

- `pipeline.progress_bars.LiveBars`: a rich live display for a terminal, a bar per stage with
  done of total, the rate and the time left;
- `LogLines`: one plain line at most every ``every`` seconds, for pipes, files and Prefect.

Both write to stderr or a logger, never stdout: stdout carries the summary, or its CSV or JSON.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, TextIO

Progress = Callable[[str, int, int | None, str], None]
ProgressMode = Literal["auto", "bar", "log", "none"]
PROGRESS_MODES: tuple[ProgressMode, ...] = ("auto", "bar", "log", "none")
LOG_EVERY_SECONDS = 10.0


def no_progress(stage: str, done: int, total: int | None, unit: str) -> None:
    """The default reporter: nobody is watching."""


@dataclass
class ReadProgress:
    """How far `pipeline.ingest.read_records` has got: bytes of a text file out of its size, or
    records of a Parquet file out of the row count its footer gives."""

    unit: str = "bytes"
    total: int | None = None
    done: int = 0


def done_of_total(done: float, total: float | None, unit: str) -> str:
    """``4,000/10,000 sentences``, ``12.3/30.1 MB``; just the count while the total is unknown."""
    if unit == "bytes":
        size, name = _byte_scale(max(done, total or 0))
        return f"{done / size:,.1f}" + ("" if total is None else f"/{total / size:,.1f}") + f" {name}"
    return f"{done:,.0f}" + ("" if total is None else f"/{total:,.0f}") + f" {unit}"


def rate_text(per_second: float, unit: str) -> str:
    if unit == "bytes":
        size, name = _byte_scale(per_second)
        return f"{per_second / size:,.1f} {name}/s"
    return f"{per_second:,.1f} {unit}/s" if per_second < 10 else f"{per_second:,.0f} {unit}/s"


def _byte_scale(count: float) -> tuple[float, str]:
    return (1e9, "GB") if count >= 1e9 else (1e6, "MB") if count >= 1e6 else (1e3, "kB")


def duration_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


@dataclass
class _StageState:
    started: float  # when the stage was first reported, and how much it had done then
    done_at_start: int
    at: float
    done: int
    total: int | None
    unit: str

    def describe(self) -> str:
        """``classify 4,000/10,000 sentences (40%), 250 sentences/s, about 24 s left``."""
        parts = [done_of_total(self.done, self.total, self.unit)]
        if self.total:
            parts[0] += f" ({self.done / self.total:.0%})"
        elapsed = self.at - self.started
        rate = (self.done - self.done_at_start) / elapsed if elapsed > 0 else 0.0
        if rate > 0:
            parts.append(rate_text(rate, self.unit))
            left = (self.total - self.done) / rate if self.total is not None else 0.0
            if left >= 0.5:
                parts.append(f"about {duration_text(left)} left")
        return ", ".join(parts)


class LogLines:
    """Plain progress lines for a log: at most one every ``every`` seconds, naming each stage
    reported since the previous line with its done of total, its rate since the stage began and
    the time left at that rate. A run shorter than ``every`` writes none."""

    def __init__(
        self,
        write: Callable[[str], None],
        every: float = LOG_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write, self.every, self.clock = write, every, clock
        self.last_line = clock()
        self.stages: dict[str, _StageState] = {}
        self.reported: dict[str, None] = {}  # stages reported since the last line, in order

    def __call__(self, stage: str, done: int, total: int | None, unit: str) -> None:
        now = self.clock()
        state = self.stages.get(stage)
        if state is None:
            state = self.stages[stage] = _StageState(now, done, now, done, total, unit)
        state.at, state.done, state.total, state.unit = now, done, total, unit
        self.reported[stage] = None
        if now - self.last_line >= self.every:
            self.write("progress: " + "; ".join(f"{s} {self.stages[s].describe()}" for s in self.reported))
            self.reported.clear()
            self.last_line = now


@contextmanager
def progress_reporter(
    mode: ProgressMode, stream: TextIO, every: float = LOG_EVERY_SECONDS
) -> Iterator[Progress]:
    """The reporter ``mode`` names, writing to ``stream``: ``auto`` is live bars when ``stream``
    is a terminal and log lines otherwise (piped, redirected, under a scheduler)."""
    if mode == "auto":
        mode = "bar" if stream.isatty() else "log"
    if mode == "none":
        yield no_progress
    elif mode == "log":
        yield LogLines(lambda line: print(line, file=stream, flush=True), every)
    else:
        from pipeline.progress_bars import live_bars  # rich only where a display is drawn

        with live_bars(stream) as bars:
            yield bars
