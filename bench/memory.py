"""Peak resident memory of this process, overall and per pipeline stage."""

from __future__ import annotations

import os
import resource
import threading
from types import TracebackType

_PAGE = os.sysconf("SC_PAGE_SIZE")


def current_rss() -> int:
    """Resident set size now, in bytes (Linux: /proc/self/statm)."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * _PAGE


def peak_rss() -> int:
    """The process's peak resident set size so far, in bytes (the kernel's own high-water mark)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class StageMemory:
    """Samples RSS every ``interval`` seconds in a thread and keeps the peak per stage.

    `enter` is the job's stage listener: the stage it names (None between stages) is charged with
    every sample until the next call. A sampler misses spikes shorter than the interval, so the
    overall figure comes from the kernel's high-water mark instead.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.stage: str | None = None
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def enter(self, stage: str | None) -> None:
        self.stage = stage
        if stage is not None:
            self._record(stage, current_rss())

    def _record(self, stage: str, rss: int) -> None:
        self.peaks[stage] = max(self.peaks.get(stage, 0), rss)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            stage = self.stage
            if stage is not None:
                self._record(stage, current_rss())

    def __enter__(self) -> StageMemory:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
