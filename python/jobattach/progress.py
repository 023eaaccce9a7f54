"""Progress of long operations (submitting, downloading, mirroring), reported to a callback
at a bounded rate; the callback returns False to cancel.

Every result and report counts with the same words, those of the official package's
``SummaryStatistics`` (the count first, then ``files`` or ``bytes``):

- ``total_files``, ``total_bytes``: every file the operation covers (found, listed, or in the
  manifests).
- ``processed_files``, ``processed_bytes``: those it moved (uploaded, downloaded or copied); in a
  progress report, those done so far in the phase (hashed, in the hashing phase).
- ``skipped_files``, ``skipped_bytes``: those it did not need to move, the destination holding
  that content already (in S3, the same content as another file, or identical on disk).
- ``deleted_files``: removed from the destination (``sync(..., delete=True)``).
- ``hashed_files``, ``cached_files``: files whose digest was computed, and those whose digest
  the hash cache served.
- ``total_time``: the seconds the operation took; ``transfer_rate``: bytes processed a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from jobattach_host.choices import Phase


@dataclass(frozen=True)
class ProgressReport:
    """What a progress callback receives; it returns False to cancel."""

    #: ``scanning`` (the totals are not known yet: they stay 0 while ``processed_files`` and
    #: ``processed_bytes`` count what was found so far), ``hashing``, ``uploading``,
    #: ``downloading``, ``copying`` (a sync between two directories) or ``verifying`` (objects
    #: of a content store told sound or not).
    phase: Phase
    #: Files and bytes done so far in this phase (bytes move as large files' parts go, and may
    #: go back when a part is retried).
    processed_files: int
    total_files: int
    processed_bytes: int
    total_bytes: int
    #: Bytes processed per second in this phase so far.
    transfer_rate: float


#: Gets each :class:`ProgressReport`; returning False cancels the operation (``Cancelled``),
#: anything else (True, None) lets it go on.
ProgressCallback = Callable[[ProgressReport], Optional[bool]]


class Reporter:
    """Calls the user's progress callback at most ten times a second, and at each phase's
    start and end; returns False once the callback asked to cancel. Thread-safe."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.phase = ""
        self.started = self.last = 0.0
        self._lock = threading.Lock()

    def counts(self, phase: Phase) -> Callable[[int, int, int, int], bool]:
        """This reporter for one phase, taking the counts a ``Tally`` gives."""
        return lambda files_done, files, done, total: self(phase, files_done, files, done, total)

    def __call__(
        self, phase: Phase, files_done: int, files_total: int, done: int, total: int
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
