"""The one retry policy of every S3 request: how many attempts, the backoff between them, and
the bound on the time spent waiting on a server that does not answer.

Each transport keeps its own loop (the direct path sleeps, the event loop awaits, botocore
runs its own retries), and asks an ``Attempts`` after each failed attempt whether another may
be made and after how long.
"""

from __future__ import annotations

import math
import random
from typing import NamedTuple

#: Statuses worth another attempt (botocore's standard mode): throttling and server errors.
RETRY_STATUS = frozenset({500, 502, 503, 504, 429})


class Failed(Exception):
    """Every attempt the options allow failed with a retryable error, or waiting on a server
    that did not answer took the request to its stall timeout; ``code`` says what failed."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class Patience(NamedTuple):
    """How long requests wait for a server that does not answer (``ClientOptions``' fields of
    these names; the default sets no bound across attempts)."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    stall_timeout: float = math.inf

    def wait_of(self, error: BaseException) -> float:
        """How long the attempt that failed with ``error`` waited for nothing: its timeout when
        it timed out (a send that stalled included, which urllib3 reports as a connection
        aborted), else 0: the server answered, or refused at once."""
        import urllib3.exceptions  # here: importing this module must not load botocore
        from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

        connect_timeouts = (ConnectTimeoutError, urllib3.exceptions.ConnectTimeoutError)
        read_timeouts = (ReadTimeoutError, urllib3.exceptions.ReadTimeoutError, TimeoutError)
        causes = _causes(error)
        # urllib3's NewConnectionError (refused, unreachable) descends from its timeout.
        refused = urllib3.exceptions.NewConnectionError
        if any(isinstance(e, connect_timeouts) and not isinstance(e, refused) for e in causes):
            return self.connect_timeout
        if any(isinstance(e, read_timeouts) for e in causes):
            return self.read_timeout
        return 0.0


#: botocore's own timeouts, and no bound across attempts.
NO_BOUND = Patience()


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps: its cause and context, and the exceptions among its
    arguments (urllib3's ``ProtocolError``) or botocore's ``error`` keyword."""
    found: list[BaseException] = []
    todo = [error]
    while todo and len(found) < 8:
        e = todo.pop()
        found.append(e)
        wrapped = [*e.args, getattr(e, "kwargs", {}).get("error"), e.__cause__, e.__context__]
        todo += [w for w in wrapped if isinstance(w, BaseException) and w not in found]
    return found


def backoff_seconds(attempt: int) -> float:
    """How long to wait after failed attempt ``attempt``: botocore's standard mode, a random
    fraction of 2^(attempt-1) seconds, at most 20."""
    return random.random() * min(20.0, 2.0 ** (attempt - 1))


def longest_backoff(attempt: int) -> float:
    """The longest wait botocore makes after failed attempt ``attempt`` (an error, not
    throttling), for a bound that holds whatever its random draw."""
    return min(20.0, 0.05 * 2.0 ** (attempt - 1))


class Attempts:
    """One request's attempts: ``number`` is the attempt being made (from 1)."""

    def __init__(self, limit: int, patience: Patience = NO_BOUND) -> None:
        self.limit, self.patience = limit, patience
        self.number = 1
        self._waited = 0.0

    def retry(self, code: str, wait: float = 0.0) -> float:
        """Counts the attempt that just failed with ``code``, having waited ``wait`` seconds
        for nothing (0: the server answered); returns the delay before the next attempt.
        Raises ``Failed`` when the attempts are spent, or when the next could take the waiting
        past the stall timeout."""
        if self.number >= self.limit:
            raise Failed(code)
        delay = backoff_seconds(self.number)
        self.bound(wait, delay, code)
        self.number += 1
        return delay

    def bound(self, wait: float, delay: float, code: str) -> None:
        """Counts a wait of ``wait`` seconds and the ``delay`` after it; raises ``Failed``
        (saying why) when another attempt, waiting as long, could take the total past the
        stall timeout. For botocore's retries too, which make their own delays."""
        if not wait:
            return
        waited = self._waited + wait
        if waited + delay + wait > self.patience.stall_timeout:
            tries = f"{self.number} attempt{'s' if self.number > 1 else ''}"
            raise Failed(
                f"no answer in {waited:.3g} s ({tries}, {code}); check the endpoint and the"
                " network (ClientOptions.stall_timeout)"
            )
        self._waited = waited + delay
