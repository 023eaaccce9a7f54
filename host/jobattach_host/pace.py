"""The minimum rate of a batch of transfers: the official worker's rule, files counted too.

The official worker agent, syncing a job's inputs, gets a progress report at least once a second
with the rate since the previous one (bytes over seconds), and cancels the sync once 60 reports in
a row were below 10 KB/s; a file finishing sets the count back to zero, so that thousands of
one-byte files, which move few bytes but many files, never trip it. Here the same rule watches
every batch of transfers (downloads, uploads, existence checks) from a thread of its own, sampling
about once a second, so that it notices a batch in which nothing moves at all as well; like the
official rule it counts samples, so that a pause of this process is one slow sample, not many.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from types import TracebackType

from .errors import StorageError


class MinimumRate:
    """Watches one batch: it fails, once for ``seconds`` in a row it moved less than ``rate``
    bytes a second and finished no file, by setting ``cancelled`` (so that nothing more starts)
    and raising a ``StorageError`` from :meth:`moved` (so that what is moving stops). A
    ``rate`` of 0 watches nothing. Used as a context manager around the batch."""

    def __init__(
        self,
        rate: float,
        seconds: float,
        cancelled: threading.Event,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.rate, self.seconds, self.cancelled = rate, seconds, cancelled
        self._progress = progress
        self._bytes = self._files = 0
        self._lock = threading.Lock()
        self._over = threading.Event()
        self._thread: threading.Thread | None = None
        #: Why the batch was stopped; None while it is fast enough.
        self.reason: str | None = None

    def moved(self, nbytes: int) -> None:
        """``nbytes`` more moved (fewer when negative: a part starting over). Raises the
        ``StorageError`` once the batch was found too slow."""
        with self._lock:
            self._bytes += nbytes
        if self.reason is not None:
            raise StorageError(self.reason)

    def mover(self, item: int) -> Callable[[int], None]:
        """``moved`` for the bytes of transfer ``item``, which the batch's ``progress`` hears of
        too."""
        progress = self._progress
        if progress is None:
            return self.moved

        def moved(nbytes: int) -> None:
            self.moved(nbytes)
            progress(item, nbytes)

        return moved

    def finished(self) -> None:
        """One more file (or request) done."""
        with self._lock:
            self._files += 1

    def error(self) -> StorageError | None:
        """The ``StorageError`` to raise for the batch, once it was found too slow."""
        return None if self.reason is None else StorageError(self.reason)

    def __enter__(self) -> MinimumRate:
        if self.rate > 0 and self.seconds > 0:
            self._thread = threading.Thread(target=self._watch, name="s3-rate", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._over.set()
        if self._thread is not None:
            self._thread.join()

    def _counts(self) -> tuple[float, int, int]:
        with self._lock:
            return time.monotonic(), self._bytes, self._files

    def _watch(self) -> None:
        # Samples in a row, as the official rule counts reports: a pause of this process (a
        # garbage collection, a loaded machine) makes one late sample, not a window of them.
        tick = min(1.0, self.seconds / 4)
        needed = math.ceil(self.seconds / tick)
        then, moved, files = self._counts()
        slow: list[tuple[float, int]] = []  # when each slow sample began, and the bytes by then
        while not self._over.wait(tick):
            now, nbytes, done = self._counts()
            if done != files or nbytes - moved >= self.rate * (now - then):
                slow.clear()
            else:
                slow.append((then, moved))
                if len(slow) >= needed:
                    since, before = slow[0]
                    self._stop((nbytes - before) / (now - since))
                    return
            then, moved, files = now, nbytes, done

    def _stop(self, measured: float) -> None:
        self.reason = (
            f"the transfer ran below the minimum rate of {_rate(self.rate)} for {self.seconds:g} s"
            f" ({_rate(max(measured, 0.0))}, no file finished): check the network and the"
            " endpoint, or lower ClientOptions.min_rate"
        )
        self.cancelled.set()


def _rate(bytes_per_second: float) -> str:
    for unit, size in (("MB/s", 1e6), ("KB/s", 1e3)):
        if bytes_per_second >= size:
            return f"{bytes_per_second / size:.3g} {unit}"
    return f"{bytes_per_second:.0f} B/s"
