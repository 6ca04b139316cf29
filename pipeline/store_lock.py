"""Waiting for a store that another process holds, instead of failing at once.

DuckDB lets one process open a file for writing, and while it has the file open no other process
can open it at all, not even read-only. So runs and readers wait for each other: whoever finds
the file held tries again with a growing pause (up to 2 s), says once on stderr (a logging
warning) what it is waiting for, and gives up with `StoreBusyError` after ``store.lock_timeout``
seconds. A run holds the file only while it uses it (`DuckDBStore.release_between_uses`), so the
waits are as long as one run's publish, not its whole run. In PostgreSQL, writers to one schema
(and whoever opens the store, to check its schema) wait for a publish the same way.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from pipeline.errors import StoreBusyError

log = logging.getLogger(__name__)

_FIRST_PAUSE_S = 0.05
_LONGEST_PAUSE_S = 2.0
_HOLDER_PID = re.compile(r"\(PID (\d+)\)")  # in DuckDB's "Conflicting lock is held in … (PID 123)"


@dataclass
class LockWait:
    """One wait for the store at ``location``: the time spent so far and the next pause."""

    location: str
    timeout: float
    holders: str = "another run publishing, or a BI tool holding it open"  # who may hold it
    started: float = field(default_factory=time.monotonic)
    pause_s: float = _FIRST_PAUSE_S
    told: bool = False

    def pause(self, conflict: Exception | None = None) -> None:
        """Sleep before the next try; once ``timeout`` is spent, raise `StoreBusyError` (from
        ``conflict``, the database's error, so that retry logic still sees its cause)."""
        pid = _HOLDER_PID.search(str(conflict)) if conflict else None
        holder = f" (PID {pid.group(1)})" if pid else ""
        waited = time.monotonic() - self.started
        if waited >= self.timeout:
            after = f"still, after {self.timeout:g} s (store.lock_timeout)" if self.timeout else "now"
            raise StoreBusyError(
                f"{self.location} is in use by another process{holder} {after}: {self.holders}; "
                "wait for it to finish and run again, or raise store.lock_timeout"
            ) from conflict
        if not self.told:
            log.warning(
                "waiting for %s: another process%s is using it (%s); trying again for up to %g s "
                "(store.lock_timeout)",
                self.location,
                holder,
                self.holders,
                self.timeout,
            )
            self.told = True
        time.sleep(min(self.pause_s, self.timeout - waited))
        self.pause_s = min(self.pause_s * 2, _LONGEST_PAUSE_S)
