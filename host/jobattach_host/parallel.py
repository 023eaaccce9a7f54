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

#: Items per call into the component: large enough that the call overhead vanishes, small
#: enough that the work spreads evenly over the workers.
MAX_BATCH = 256


def default_workers() -> int:
    """Threads for work that mostly waits (WASI's hand-offs, the network)."""
    return min(8, 4 * (os.cpu_count() or 1))


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
) -> list[R]:
    """``call(state, batch)`` over batches of ``items``; results in the order of ``items``.

    Each thread makes one state with ``new_state`` (an Instance, say) for all the batches it
    takes; ``close`` is given each at the end. ``done(start, results)`` hears of each batch
    that finishes, on the thread that ran it, so the caller can keep what was done when
    another batch fails. The first batch (in order) that raises stops the whole operation
    with its exception, once the others have run.
    """
    per_batch = max(1, min(MAX_BATCH, -(-len(items) // (4 * max(workers, 1)))))
    starts = range(0, len(items), per_batch)
    local = threading.local()
    states: list[S] = []

    def run(start: int) -> list[R]:
        if not hasattr(local, "state"):
            local.state = new_state()
            states.append(local.state)
        results = call(local.state, list(items[start : start + per_batch]))
        if done is not None:
            done(start, results)
        return results

    try:
        if workers <= 1 or len(starts) <= 1:
            return [r for start in starts for r in run(start)]
        with ThreadPoolExecutor(min(workers, len(starts)), thread_name_prefix="jobattach") as pool:
            return [r for batch_result in pool.map(run, starts) for r in batch_result]
    finally:
        for state in states if close else ():
            close(state)  # type: ignore[misc]
