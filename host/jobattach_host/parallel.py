"""Running one batched operation on several threads, each with a state of its own.

Used for hashing: reads into a kernel's memory and the kernel's calls both release the GIL,
so threads hash on several cores at once. Each worker thread keeps one state (a kernel and an
opener of the root's files) for all the batches it takes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")
R = TypeVar("R")
S = TypeVar("S")

#: Items per ``call``: large enough that the per-call overhead vanishes, small enough that
#: the work spreads evenly over the workers.
MAX_BATCH = 256


def hashing_workers() -> int:
    """Threads for hashing, which reads from the page cache and computes: one per core."""
    return min(8, os.cpu_count() or 1)


def map_batches(
    new_state: Callable[[], S],
    call: Callable[[S, list[T]], list[R]],
    items: Sequence[T],
    workers: int,
    done: Callable[[int, list[R]], None] | None = None,
    close: Callable[[S], None] | None = None,
    short: Callable[[T], bool] | None = None,
) -> list[R]:
    """``call(state, batch)`` over batches of ``items``; results in the order of ``items``.

    Each thread makes one state with ``new_state`` for all the batches it takes; ``close`` is
    given each at the end. The items ``short`` says are short (small files) all run on one
    thread, one batch after another: they are mostly Python and brief system calls, whose GIL
    hand-offs cost more on several threads than they overlap. The others (large files, whose
    work releases the GIL for long) spread over the other threads meanwhile.

    ``done(start, results)`` hears of each run of consecutive items that finishes, on the
    thread that ran it, so the caller can keep what was done when another batch fails. The
    failing batch that comes first in ``items`` stops the whole operation with its exception,
    once the others have run.
    """
    is_short = [short is not None and short(item) for item in items]
    brief = [i for i, s in enumerate(is_short) if s]
    spread = [i for i, s in enumerate(is_short) if not s]
    per_batch = max(1, min(MAX_BATCH, -(-len(spread) // (4 * max(workers, 1)))))
    lanes = [[brief[i : i + MAX_BATCH] for i in range(0, len(brief), MAX_BATCH)]] if brief else []
    lanes += [[spread[i : i + per_batch]] for i in range(0, len(spread), per_batch)]
    results: list[R | None] = [None] * len(items)
    local = threading.local()
    states: list[S] = []

    def run(lane: list[list[int]]) -> tuple[int, BaseException] | None:
        """Runs ``lane``'s batches in turn; the first failure, with the item it began at."""
        if not hasattr(local, "state"):
            local.state = new_state()
            states.append(local.state)
        for batch in lane:
            try:
                out = call(local.state, [items[i] for i in batch])
            except BaseException as e:
                return batch[0], e
            for i, r in zip(batch, out):
                results[i] = r
            if done is not None:
                for start, at, stop in _runs(batch):
                    done(start, out[at : at + stop - start])
        return None

    try:
        if workers <= 1 or len(lanes) <= 1:
            failures = [f for f in map(run, lanes) if f]
        else:
            threads = min(workers, len(lanes))
            with ThreadPoolExecutor(threads, thread_name_prefix="jobattach") as pool:
                failures = [f for f in pool.map(run, lanes) if f]
        if failures:
            raise min(failures, key=lambda f: f[0])[1]
    finally:
        for state in states if close else ():
            close(state)  # type: ignore[misc]
    return results  # type: ignore[return-value]  # every place was filled


def _runs(batch: list[int]) -> list[tuple[int, int, int]]:
    """The runs of consecutive numbers in ``batch`` (ascending), as ``(start, position in
    batch, stop)``."""
    runs: list[tuple[int, int, int]] = []
    for at, i in enumerate(batch):
        if runs and runs[-1][2] == i:
            runs[-1] = (runs[-1][0], runs[-1][1], i + 1)
        else:
            runs.append((i, at, i + 1))
    return runs
