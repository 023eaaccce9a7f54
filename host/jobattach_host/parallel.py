"""Running one batched operation on several Stores at once.

wasmtime's C API runs every WASI filesystem call on a background thread and caps each read at
64 KiB, so a single Store spends most of its time waiting on thread hand-offs. Separate Stores
on separate threads overlap those waits (the ctypes calls release the GIL). Each worker thread
keeps one Session for all the batches it takes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from .sandbox import Session

T = TypeVar("T")
R = TypeVar("R")

#: Items per call into the component: large enough that the call overhead vanishes, small
#: enough that the work spreads evenly over the workers.
MAX_BATCH = 256


def default_workers() -> int:
    return min(8, 4 * (os.cpu_count() or 1))


def map_batches(
    new_session: Callable[[], Session],
    call: Callable[[Session, list[T]], list[R]],
    items: Sequence[T],
    workers: int,
) -> list[R]:
    """``call(session, batch)`` over batches of ``items``; results in the order of ``items``.

    The first batch (in order) that raises stops the whole operation with its exception.
    """
    per_batch = max(1, min(MAX_BATCH, -(-len(items) // (4 * max(workers, 1)))))
    batches = [list(items[i : i + per_batch]) for i in range(0, len(items), per_batch)]
    if workers <= 1 or len(batches) <= 1:
        return call(new_session(), list(items))
    local = threading.local()

    def run(batch: list[T]) -> list[R]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = new_session()
        return call(session, batch)

    with ThreadPoolExecutor(min(workers, len(batches)), thread_name_prefix="jobattach") as pool:
        return [r for batch_result in pool.map(run, batches) for r in batch_result]
