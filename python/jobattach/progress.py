"""Progress of long operations (submitting, downloading, mirroring), reported to a callback
at a bounded rate; the callback returns False to cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressReport:
    """What a progress callback receives; it returns False to cancel."""

    #: "scanning" (totals not known yet: they stay 0), "hashing", "uploading" or
    #: "downloading".
    phase: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    #: Bytes per second in this phase so far.
    rate: float


ProgressCallback = Callable[[ProgressReport], bool]


class Reporter:
    """Calls the user's progress callback at most ten times a second, and at each phase's
    start and end; returns False once the callback asked to cancel. Thread-safe."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.phase = ""
        self.started = self.last = 0.0
        self._lock = threading.Lock()

    def counts(self, phase: str) -> Callable[[int, int, int, int], bool]:
        """This reporter for one phase, taking the counts a ``Tally`` gives."""
        return lambda files_done, files, done, total: self(phase, files_done, files, done, total)

    def __call__(
        self, phase: str, files_done: int, files_total: int, done: int, total: int
    ) -> bool:
        if self.callback is None:
            return True
        with self._lock:
            now = time.perf_counter()
            if phase != self.phase:
                self.phase, self.started = phase, now
            elif now - self.last < 0.1 and done < total:
                return True
            self.last = now
            elapsed = now - self.started
            rate = done / elapsed if elapsed > 0 else 0.0
            report = ProgressReport(phase, files_done, files_total, done, total, rate)
            return self.callback(report) is not False
