"""Many small-object requests at once, on one asyncio event loop.

With a thread per request in flight, two cores spend more time handing Python's GIL from
thread to thread than sending requests; one event loop keeping as many keep-alive connections
busy spends a fraction of that client CPU per request. So batches of small objects (a job's
content, existence checks) go through here; large files still go through boto3's transfer
manager.

The requests are s3wire's: signed by its ``Wire``, and only its plain cases handled here
(success, a missing object on HEAD, throttling, server errors and dropped connections retried
by the one retry policy, ``retry``). Any other answer means boto3 must do the work: the batch
sends nothing more, and returns what is not done for ``transport.Router`` to do through boto3.
It is not used where boto3 would go through a proxy or present a client certificate.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from botocore.httpsession import get_cert_path

from .retry import RETRY_STATUS, Attempts, Failed
from .s3wire import (
    CONFLICT_STATUS,
    EXISTS_STATUS,
    Wire,
    error_code,
    put_headers,
    unexpected_size,
    user_metadata,
)
from .transport import ItemFailed, Moved, Request, Sent

_CHUNK = 1 << 20
#: A PUT body goes out in pieces of this size, the read timeout restarting with each.
_SEND = 1 << 16
#: The largest file sent by PUT here: a body is read whole (its SHA-256 is signed), so a batch
#: holds at most this much per connection.
MAX_PUT_BYTES = 1 << 20
#: What a failing connection raises: a reset, a timeout, a reply cut short or garbled.
_CONNECTION_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    asyncio.TimeoutError,
)
#: How often stalled connections are looked for (more often for a short read timeout); a
#: read stalls after the read timeout.
_WATCH_EVERY = 0.5


class Settings(NamedTuple):
    connections: int
    connect_timeout: float
    read_timeout: float


class Loop:
    """The event loop's batches for the objects of one bucket (a ``BatchTransport``)."""

    max_put_bytes = MAX_PUT_BYTES

    def __init__(self, wire: Wire, tls: ssl.SSLContext | None, settings: Settings) -> None:
        #: The TLS context for the wire's endpoint, None for plain HTTP.
        self.wire, self.tls, self.settings = wire, tls, settings

    @classmethod
    def for_wire(cls, wire: Wire, settings: Settings) -> Loop | None:
        """A Loop, or None where it must not be used: a proxy or a client certificate, which
        only boto3 handles."""
        tls = tls_for(wire)
        return None if tls is False else cls(wire, tls, settings)

    def run(
        self,
        requests: Sequence[Request],
        *,
        done: Callable[[int, Any], None] | None = None,
        cancelled: threading.Event | None = None,
        started: Callable[[int], None] | None = None,
        moved: Moved | None = None,
    ) -> list[int]:
        """Sends every request, ``settings.connections`` at a time; ``done(i, result)`` for
        each that succeeded (a HEAD's result is the object's user metadata, or None when it
        does not exist; a PUT's is its ``Sent``). Returns the indices boto3 must do; raises
        ``ItemFailed`` for the first request that failed for good, and stops sending once
        ``cancelled`` is set. ``started(i)`` hears of each request before anything of it is
        sent: one started and never done may have reached the server all the same.
        ``moved`` hears of the bytes of bodies as they go either way; what it raises ends
        the batch."""
        batch = _Batch(
            self.wire, self.tls, requests, self.settings, done, cancelled, started, moved
        )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(batch.main())
        else:  # a loop runs in this thread already: ours gets a thread of its own, this one waits
            with ThreadPoolExecutor(1, thread_name_prefix="s3-loop") as pool:
                pool.submit(asyncio.run, batch.main()).result()
        return sorted(batch.left)


def tls_for(wire: Wire) -> ssl.SSLContext | Literal[False] | None:
    """The TLS context for the wire's endpoint (None for plain HTTP), or False where the loop
    must not be used: a proxy or a client certificate, which only boto3 handles."""
    http = wire.http
    proxies = getattr(http, "_proxy_config", None)
    if proxies is None or proxies.proxy_url_for(wire.origin) or getattr(http, "_cert_file", 1):
        return False
    if urlsplit(wire.origin).scheme != "https":
        return None
    verify = getattr(http, "_verify", True)
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=get_cert_path(verify))


class _Local(Exception):
    """An OSError of a local file, kept apart from the connection's OSErrors."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.deadline = 0.0  # when the current wait for the server becomes a timeout
        self.timed_out = False
        self.replies = 0  # replies read on it: a reused connection may have been closed idle

    def close(self) -> None:
        self.writer.transport.abort()


class _Stale(Exception):
    """A reused keep-alive connection was closed by the server before this request's reply
    began: the request is sent again on a new connection, which costs no attempt."""


class ReadTimeout(Exception):
    """The server sent nothing for the read timeout."""


class _Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    keep_alive: bool
    body: bytes  # what was not streamed to a file: an error document


class _Batch:
    def __init__(
        self,
        wire: Wire,
        tls: ssl.SSLContext | None,
        requests: Sequence[Request],
        settings: Settings,
        done: Callable[[int, Any], None] | None,
        cancelled: threading.Event | None,
        started: Callable[[int], None] | None = None,
        moved: Moved | None = None,
    ) -> None:
        self.wire, self.tls, self.requests, self.settings = wire, tls, requests, settings
        self.done, self.cancelled, self.started = done, cancelled, started
        self.moved: Moved = moved or _ignore
        parts = urlsplit(wire.origin)
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.next = 0
        self.left: list[int] = []
        self.open: set[_Connection] = set()

    async def main(self) -> None:
        workers = [
            asyncio.ensure_future(self._worker())
            for _ in range(min(self.settings.connections, len(self.requests)))
        ]
        watchdog = asyncio.ensure_future(self._watch())
        try:
            await asyncio.gather(*workers)
        finally:
            for task in (*workers, watchdog):
                task.cancel()
            await asyncio.gather(*workers, watchdog, return_exceptions=True)
            for conn in self.open:
                conn.close()

    def _take(self) -> int | None:
        if self.left or self._cancelled() or self.next >= len(self.requests):
            if self.left:  # boto3 takes over: everything not started goes to it
                self.left.extend(range(self.next, len(self.requests)))
                self.next = len(self.requests)
            return None
        self.next += 1
        return self.next - 1

    async def _worker(self) -> None:
        conn: _Connection | None = None
        while True:
            i = self._take()
            if i is None:
                return
            if self.started is not None:
                self.started(i)
            try:
                conn = await self._one(i, conn)
            except _Local as e:
                raise ItemFailed(i, e.error) from e.error
            except Failed as e:
                raise ItemFailed(i, e) from e

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        every = min(_WATCH_EVERY, self.settings.read_timeout / 4)  # a stall ends on time
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for conn in list(self.open):
                if conn.deadline and now > conn.deadline:
                    conn.timed_out = True
                    conn.close()  # the waiting read fails, and the request is retried

    async def _one(self, i: int, conn: _Connection | None) -> _Connection | None:
        """One request with its retries; returns the connection to reuse, if any. A request
        stops between attempts once the batch is cancelled, without being done."""
        req = self.requests[i]
        body = _read(req.path) if req.method == "PUT" else None
        attempts = Attempts(self.wire.attempts, self.wire.patience)
        resent = False  # an earlier send of it may have reached the server
        while True:
            try:
                if conn is None:
                    conn = await self._connect()
                reply = await self._exchange(conn, req, body)
                conn.deadline = 0.0  # idle until its next request: not a stall
            except _Stale:
                self._drop(conn)
                conn = None
                resent = True
                continue
            except ssl.SSLCertVerificationError as e:
                raise Failed(type(e).__name__) from e  # no attempt will change the certificate
            except _CONNECTION_ERRORS as e:
                timed_out = conn is not None and conn.timed_out
                self._drop(conn)
                conn = None
                error: Exception = ReadTimeout() if timed_out else e
                try:
                    delay = attempts.retry(type(error).__name__, self._waited(error))
                except Failed as failed:
                    raise failed from e
            else:
                result = _result(req, reply, resent or attempts.number > 1)
                if result is not _NO_RESULT:
                    if not reply.keep_alive:
                        self._drop(conn)
                        conn = None
                    if self.done is not None:
                        self.done(i, result)
                    return conn
                conflict = reply.status == CONFLICT_STATUS and req.create_only
                if reply.status not in RETRY_STATUS and not conflict:
                    self.left.append(i)  # only boto3 knows what to do with this answer
                    if reply.keep_alive:
                        return conn
                    self._drop(conn)
                    return None
                delay = attempts.retry(error_code(reply.body) or str(reply.status))
                self._drop(conn)  # the server may close it while we wait
                conn = None
            if self._cancelled():
                return conn
            await asyncio.sleep(delay)
            if self._cancelled():
                return conn

    def _cancelled(self) -> bool:
        return self.cancelled is not None and self.cancelled.is_set()

    def _waited(self, error: Exception) -> float:
        """How long the attempt that failed with ``error`` waited for nothing."""
        if isinstance(error, ReadTimeout):
            return self.settings.read_timeout
        if isinstance(error, asyncio.TimeoutError):  # only the connection's opening has a timer
            return self.settings.connect_timeout
        return 0.0

    async def _connect(self) -> _Connection:
        opening = asyncio.open_connection(
            self.host,
            self.port,
            ssl=self.tls,
            server_hostname=self.host if self.tls else None,
            limit=1 << 16,
        )
        reader, writer = await asyncio.wait_for(opening, self.settings.connect_timeout)
        conn = _Connection(reader, writer)
        self.open.add(conn)
        return conn

    def _drop(self, conn: _Connection | None) -> None:
        if conn is not None:
            conn.close()
            self.open.discard(conn)

    async def _exchange(self, conn: _Connection, req: Request, body: bytes | None) -> _Reply:
        path = self.wire.path_of(req.key)
        headers = put_headers(req.metadata, req.digest, req.create_only) if body is not None else {}
        signed = self.wire.sign(req.method, path, headers, body)
        lines = [f"{req.method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in signed.items())]
        try:
            conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
            for start in range(0, len(body or b""), _SEND):  # a timeout per piece, not per body
                piece = memoryview(body or b"")[start : start + _SEND]
                conn.writer.write(piece)
                self._wait(conn)
                await conn.writer.drain()
                self.moved(len(piece))
            self._wait(conn)
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as e:
            nothing = not isinstance(e, asyncio.IncompleteReadError) or not e.partial
            if conn.replies and nothing and not conn.timed_out:
                raise _Stale() from e  # closed while idle: nothing of this reply arrived
            raise
        conn.replies += 1
        status, headers_in, keep_alive = _parse_head(head)
        if req.method == "HEAD" or status in (204, 304):
            return _Reply(status, headers_in, keep_alive, b"")
        if status == 200 and req.method == "GET" and req.path is not None:
            chunked = "chunked" in _tokens(headers_in.get("transfer-encoding", ""))
            announced = None if chunked else headers_in.get("content-length")  # as _body reads
            if req.size is not None and announced is not None and int(announced) != req.size:
                raise Failed(unexpected_size(int(announced), req.size))
            try:
                out = req.sink() if req.sink else open(req.path, "wb")  # noqa: SIM115  # closed below
            except OSError as e:
                raise _Local(e) from e
            write = out.write if req.size is None else _bounded(out.write, req.size)
            try:
                keep_alive &= await self._body(conn, headers_in, write)
            finally:
                try:
                    out.close()  # a full disk may only show when the buffer is written
                except OSError as e:
                    raise _Local(e) from e
            return _Reply(status, headers_in, keep_alive, b"")
        chunks: list[bytes] = []
        keep_alive &= await self._body(conn, headers_in, chunks.append)
        return _Reply(status, headers_in, keep_alive, b"".join(chunks))

    async def _body(
        self, conn: _Connection, headers: dict[str, str], sink: Callable[[bytes], Any]
    ) -> bool:
        """Reads a reply's body into ``sink``; whether the connection can be reused."""
        reader = conn.reader
        if "chunked" in _tokens(headers.get("transfer-encoding", "")):  # before any length
            while True:
                self._wait(conn)
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailer fields
                    return True
                await self._exactly(conn, size, sink)
                await reader.readexactly(2)
        if "content-length" in headers:
            await self._exactly(conn, int(headers["content-length"]), sink)
            return True
        while True:  # the body ends with the connection
            self._wait(conn)
            chunk = await reader.read(_CHUNK)
            if not chunk:
                return False
            _write(sink, chunk)
            self.moved(len(chunk))

    async def _exactly(self, conn: _Connection, n: int, sink: Callable[[bytes], Any]) -> None:
        while n > 0:
            self._wait(conn)
            chunk = await conn.reader.read(min(n, _CHUNK))
            if not chunk:
                raise EOFError(f"the connection closed {n} bytes short")
            _write(sink, chunk)
            self.moved(len(chunk))
            n -= len(chunk)

    def _wait(self, conn: _Connection) -> None:
        conn.deadline = asyncio.get_running_loop().time() + self.settings.read_timeout


#: What ``_result`` returns for a reply that is no result: retried, or left to boto3.
_NO_RESULT = object()


def _result(req: Request, reply: _Reply, resent: bool) -> Any:
    """What a request's reply tells ``done``: a PUT's ``Sent``, or the object's user metadata
    (None when a HEAD finds no such object); ``_NO_RESULT`` when it is no result."""
    if reply.status in (200, 204):
        if req.method == "PUT":
            return Sent(reply.headers.get("etag"), there=True, maybe_ours=True)
        return user_metadata(reply.headers)
    if reply.status == 404 and req.method == "HEAD":
        return None
    if reply.status == EXISTS_STATUS and req.create_only:
        return Sent(None, there=True, maybe_ours=resent)
    return _NO_RESULT


def _parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    """Status, headers (names in lower case) and keep-alive of a reply's head."""
    lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    connection = _tokens(headers.get("connection", ""))
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    return int(status), headers, keep_alive


def _tokens(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",")}


def _read(path: str | os.PathLike[str] | None) -> bytes:
    if path is None:
        return b""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise _Local(e) from e


def _bounded(write: Callable[[bytes], Any], size: int) -> Callable[[bytes], Any]:
    """``write``, refusing (``Failed``) a body that grows past ``size`` bytes (one with no
    length announced)."""
    done = 0

    def bounded(chunk: bytes) -> Any:
        nonlocal done
        done += len(chunk)
        if done > size:
            raise Failed(f"the object has more than the {size} bytes expected")
        return write(chunk)

    return bounded


def _ignore(nbytes: int) -> None:
    pass


def _write(sink: Callable[[bytes], Any], chunk: bytes) -> None:
    try:
        sink(chunk)
    except OSError as e:
        raise _Local(e) from e
