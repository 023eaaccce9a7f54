"""Running one batched operation on several Stores at once.

wasmtime's C API runs every WASI filesystem call on a background thread and caps each read at
64 KiB, so a single Store spends most of its time waiting on thread hand-offs. Separate Stores
on separate threads overlap those waits (the ctypes calls release the GIL). Each worker thread
keeps one Instance for all the batches it takes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from .sandbox import Instance

T = TypeVar("T")
R = TypeVar("R")

#: Items per call into the component: large enough that the call overhead vanishes, small
#: enough that the work spreads evenly over the workers.
MAX_BATCH = 256


def default_workers() -> int:
    return min(8, 4 * (os.cpu_count() or 1))


def map_batches(
    new_instance: Callable[[], Instance],
    call: Callable[[Instance, list[T]], list[R]],
    items: Sequence[T],
    workers: int,
    done: Callable[[int, list[R]], None] | None = None,
) -> list[R]:
    """``call(instance, batch)`` over batches of ``items``; results in the order of ``items``.

    ``done(start, results)`` hears of each batch that finishes, on the thread that ran it, so
    the caller can keep what was done when another batch fails. The first batch (in order)
    that raises stops the whole operation with its exception, once the others have run.
    """
    per_batch = max(1, min(MAX_BATCH, -(-len(items) // (4 * max(workers, 1)))))
    starts = range(0, len(items), per_batch)
    local = threading.local()

    def run(start: int) -> list[R]:
        instance = getattr(local, "instance", None)
        if instance is None:
            instance = local.instance = new_instance()
        results = call(instance, list(items[start : start + per_batch]))
        if done is not None:
            done(start, results)
        return results

    if workers <= 1 or len(starts) <= 1:
        return [r for start in starts for r in run(start)]
    with ThreadPoolExecutor(min(workers, len(starts)), thread_name_prefix="jobattach") as pool:
        return [r for batch_result in pool.map(run, starts) for r in batch_result]
