"""Live progress bars on a terminal (rich): one row per stage with its bar, done of total, rate
and time left. The `pipeline.progress.Progress` contract, drawn; the module stands apart so that
only a command that draws bars imports rich."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.text import Text

from pipeline.progress import done_of_total, rate_text


class _DoneOfTotal(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(done_of_total(task.completed, task.total, task.fields["unit"]), style="progress.download")


class _Rate(ProgressColumn):
    """The recent rate while a stage runs; once it is finished, its average."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        if task.finished:
            speed = task.completed / task.finished_time if task.finished_time else None
        return Text("" if not speed else rate_text(speed, task.fields["unit"]), style="progress.data.speed")


class LiveBars:
    """A `Progress` that draws a bar per stage, in the order the stages first report; a stage
    whose total is not known yet pulses. Time left is rich's estimate from the recent rate."""

    def __init__(
        self, console: Console, clock: Callable[[], float] = time.monotonic, redirect_stdout: bool = False
    ) -> None:
        # stdout is only redirected when it shares the terminal: a piped summary must stay on stdout
        self.bars = RichProgress(
            TextColumn("{task.description:<10}"),
            BarColumn(bar_width=30),
            _DoneOfTotal(),
            _Rate(),
            TimeRemainingColumn(elapsed_when_finished=True),
            console=console,
            get_time=clock,
            redirect_stdout=redirect_stdout,
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int | None, unit: str) -> None:
        task = self.tasks.get(stage)
        if task is None:
            task = self.tasks[stage] = self.bars.add_task(str(stage), total=total, unit=unit)
        self.bars.update(task, completed=done, total=total)


@contextmanager
def live_bars(stream: TextIO) -> Iterator[LiveBars]:
    """Bars drawn on ``stream`` while the block runs; their last state stays on screen."""
    bars = LiveBars(Console(file=stream), redirect_stdout=sys.stdout.isatty() and stream.isatty())
    with bars.bars:
        yield bars
