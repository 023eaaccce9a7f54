"""Hashing files: the component checks what is asked, the host reads, the kernel hashes.

The files are read below their root by :class:`host_files.Opener` (never outside it, never
through a symlink that leads out) straight into a kernel's memory (``kernel.py``): small
files side by side, many digests per call; a large one in pieces of the kernel's buffer. No
file byte becomes a Python object, and both the reads and the kernel's calls release the GIL,
so a few threads hash on every core at once.
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from . import engine
from .engine import Digest as Digest
from .engine import Item as Item
from .errors import AttachmentError, Cancelled, ErrorKind, FileAccessError
from .host_files import Opener, regular_size
from .kernel import BUFFER, SPANS, Kernel
from .parallel import hashing_workers, map_batches
from .sandbox import Grant, StrPath, checked_root, instance_for

#: A piece of a large file: half the buffer (the other half is being read meanwhile).
PIECE = BUFFER // 2


def hash_file(path: StrPath, *, memory_limit: int | None = None) -> str:
    """xxh3-128 of a file's contents as 32 lowercase hex digits.

    Only the file's directory is read from. ``memory_limit`` bounds the kernel's memory, in
    bytes (it needs about ``kernel.BUFFER`` and one more MiB, whatever the file's size).
    """
    p = Path(path).absolute()
    try:
        if memory_limit is None:
            return str(digests(p.parent, [p.name])[0])
        _check([p.name])
        with _Worker(checked_root(p.parent), Kernel.new(memory_limit)) as w:
            return str(w.hash(p.name, None, 0))
    except AttachmentError as e:
        raise e.below(str(p.parent)) from None


def hash_files(
    root: StrPath | Grant, paths: Sequence[str | tuple[str, int]], *, workers: int | None = None
) -> list[str]:
    """Digests of many files below ``root``, in the order of ``paths`` (relative, ``/``-separated).

    An item may be ``(path, size)`` when the size is known from a listing: exactly that many
    bytes are hashed, and a file found shorter raises ``FileAccessError``. Nothing outside
    ``root`` is read: a path that would leave it raises ``ValidationError`` (or
    ``FileAccessError``, kind ``permission-denied``, for a symlink leading out). The files are
    hashed in batches on ``workers`` threads (default: one per core).
    """
    return [str(d) for d in digests(root, paths, workers=workers)]


def digests(
    root: StrPath | Grant,
    items: Sequence[Item],
    *,
    workers: int | None = None,
    done: Callable[[int, list[Digest]], None] | None = None,
    cancelled: threading.Event | None = None,
    planned: bool = False,
    hashed: Callable[[int], None] | None = None,
) -> list[Digest]:
    """:func:`hash_files` for any :data:`Item`; ``(path, size, chunk)`` gives the list of
    digests of each ``chunk`` bytes (the newer format's ``chunkhashes``). ``done(start,
    digests)`` hears of each batch hashed (see :func:`map_batches`); once ``cancelled`` is
    set, no batch or piece of a large file starts and ``Cancelled`` is raised. ``hashed(n)``
    hears of every ``n`` bytes hashed, as they are (a large file piece by piece), on the
    thread that hashed them. ``planned`` items come from the component's own plan, so they
    are not checked again."""
    top = root.path if isinstance(root, Grant) else Path(os.path.realpath(root))
    checked_root(top)
    if not items:
        return []
    if not planned:
        _check(items)

    def call(w: _Worker, batch: list[Item]) -> list[Digest]:
        if cancelled is not None and cancelled.is_set():
            raise Cancelled("cancelled while hashing")
        return w.hash_batch(batch)

    n = hashing_workers() if workers is None else workers
    # Reads overlap hashing where threads hashing large files (or maybe large: of no known
    # size) leave cores free.
    large = sum(isinstance(item, str) or not _small(item) for item in items)
    overlap = min(n, large) < (os.cpu_count() or 1)
    new = lambda: _Worker(top, Kernel.take(), overlap, hashed, cancelled)  # noqa: E731
    # A few files spread over the threads whatever their sizes (the GIL's hand-offs of so
    # few cost nothing); many small ones share one thread.
    short = _small if len(items) > 4 * n else None
    return map_batches(new, call, items, n, done, _Worker.close, short=short)


#: Files below this size are hashed on one thread (see :func:`map_batches`), larger ones on
#: the others meanwhile.
SMALL = 1 << 20


def _small(item: Item) -> bool:
    """A file of a known small size, or of an unknown one (many named files are mostly
    small; a large one among them is still read and hashed at once, see ``_stream``)."""
    return isinstance(item, str) or (item[1] < SMALL and (len(item) == 2 or not item[2]))


_checkers = threading.local()


def _check(items: Sequence[Item]) -> None:
    """The component's rules for ``items``, before any read; the instance asked (granted
    nothing) stays with the thread, since making one costs more than hashing a small file."""
    s = getattr(_checkers, "instance", None)
    if s is None:
        s = _checkers.instance = instance_for()
    engine.check_items(s, items)


class _Worker:
    """What one thread hashes with: an opener of the root's files and a kernel."""

    def __init__(
        self,
        top: Path,
        k: Kernel,
        overlap: bool = True,
        hashed: Callable[[int], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> None:
        self.opener = Opener(top)
        self.kernel = k
        #: Read a large file's next piece while hashing the last (see :meth:`_read`).
        self.overlap = overlap
        self._hashed = hashed
        self._cancelled = cancelled
        self._spans: list[tuple[int, int]] = []  # files laid out in the buffer, not yet hashed
        self._waiting: list[int] = []  # their places in the batch
        self._used = 0  # bytes of the buffer they fill
        self._out: list[Digest] = []  # the batch's digests
        self._reads: ThreadPoolExecutor | None = None

    def __enter__(self) -> _Worker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._reads is not None:
            self._reads.shutdown()
        self.opener.close()
        self.kernel.give_back()

    def hash_batch(self, batch: list[Item]) -> list[Digest]:
        self._out = [""] * len(batch)
        for i, item in enumerate(batch):
            path, size, chunk = _parts(item)
            digest = self.hash(path, size, chunk, place=i)
            if digest is not None:
                self._out[i] = digest
        self._flush()
        return self._out

    def hash(self, path: str, size: int | None, chunk: int, place: int = -1) -> Digest | None:
        """The digest of ``path``: exactly ``size`` bytes, or to its end when None. With a
        ``place`` in the batch, a small file is laid out in the buffer beside others, hashed
        with them by :meth:`_flush` into that place, and None returned."""
        try:
            fd = self.opener.open(path)
        except OSError as e:
            raise _failure("cannot open", e, path) from None
        try:
            # A size from a listing spares the stat; a file that is not regular any more then
            # fails its read (a directory) or reads short (a FIFO).
            n = _regular_size(fd, path) if size is None else size
            # Read whole with one byte more when the size is not pinned: that byte shows a
            # file that grew since its stat (then it is read again, in pieces, to its end).
            whole = n + (size is None)
            if place >= 0 and chunk == 0 and whole <= BUFFER:
                if whole > BUFFER - self._used or len(self._spans) == SPANS:
                    self._flush()
                got = _read_into(fd, self.kernel.buffer[self._used : self._used + whole], path)
                if got < n and size is not None:
                    raise _shorter(path, got, n)
                if got < whole or size is not None:  # the whole file (it may have shrunk)
                    self._spans.append((self._used, got))
                    self._waiting.append(place)
                    self._used += got
                    return None
                os.lseek(fd, 0, os.SEEK_SET)
            self._flush()  # pieces are read where the files laid out wait
            return self._stream(fd, path, size, chunk)
        finally:
            os.close(fd)

    def _stream(self, fd: int, path: str, size: int | None, chunk: int) -> Digest:
        """Hashes from ``fd`` in pieces: ``size`` bytes (or to the end), in ``chunk``-byte
        digests when ``chunk`` is above 0. With :attr:`overlap`, each piece is read into one
        half of the buffer while the kernel hashes the other (both release the GIL)."""
        k, digests = self.kernel, []
        lengths = _pieces(size, chunk)
        half = 0  # where the piece being hashed lies: 0 or PIECE
        want, ends_chunk = next(lengths, (0, False))
        reading = self._read(fd, k.buffer[:want], path) if want else None
        offset = 0
        try:
            while reading is not None:
                got = reading.result()
                reading = None
                if got < want and size is not None:
                    raise _shorter(path, offset + got, size)
                following = next(lengths, None) if got == want else None  # else: the end
                if following and self.overlap:  # into the other half, while this is hashed
                    view = k.buffer[PIECE - half : PIECE - half + following[0]]
                    reading = self._read(fd, view, path)
                k.update(half, got)
                self._count(got)
                offset += got
                if chunk and ends_chunk:
                    digests.append(k.finish())
                if following:
                    want, ends_chunk = following
                    if self.overlap:
                        half = PIECE - half
                    else:  # once this piece is hashed, into the same place (fewer cache misses)
                        reading = self._read(fd, k.buffer[:want], path)
            if not chunk:
                return k.finish()
            return digests
        except BaseException:
            if reading is not None:
                with contextlib.suppress(BaseException):
                    reading.result()  # the descriptor is closed after this returns
            k.finish()  # the next file starts a digest of its own
            raise

    def _count(self, n: int) -> None:
        """Tells of ``n`` bytes hashed; raises ``Cancelled`` once the caller asked to stop."""
        if self._hashed is not None:
            self._hashed(n)
        if self._cancelled is not None and self._cancelled.is_set():
            raise Cancelled("cancelled while hashing")

    def _read(self, fd: int, view: memoryview, path: str) -> Future[int]:
        """Reads a piece: on a thread of its own (made on first use) when :attr:`overlap`,
        else at once (with other threads hashing other large files, the cores are busy
        already, and the hand-offs would only cost)."""
        if not self.overlap:
            done: Future[int] = Future()
            done.set_result(_read_into(fd, view, path))
            return done
        if self._reads is None:
            self._reads = ThreadPoolExecutor(1, thread_name_prefix="jobattach-read")
        return self._reads.submit(_read_into, fd, view, path)

    def _flush(self) -> None:
        """Hashes the files laid out in the buffer, into their places, and empties it."""
        if self._spans:
            for i, digest in zip(self._waiting, self.kernel.digests(self._spans)):
                self._out[i] = digest
            self._count(self._used)
        self._spans, self._waiting, self._used = [], [], 0


def _pieces(size: int | None, chunk: int) -> Iterator[tuple[int, bool]]:
    """The pieces a file is read in: their lengths, and whether each ends a chunk. Without a
    size, pieces go on until one comes back short (the end of the file)."""
    if size is None:
        yield from itertools.repeat((PIECE, False))
        return
    for start in range(0, size, chunk or size):
        end = min(size, start + chunk) if chunk else size
        for at in range(start, end, PIECE):
            yield min(PIECE, end - at), at + PIECE >= end


def _parts(item: Item) -> tuple[str, int | None, int]:
    if isinstance(item, str):
        return item, None, 0
    if len(item) == 2:
        return item[0], item[1], 0
    return item[0], item[1], item[2]


def _regular_size(fd: int, path: str) -> int:
    try:
        return regular_size(fd)
    except OSError as e:
        raise FileAccessError(e.strerror or str(e), kind="wrong-type", path=path) from None


if hasattr(os, "readv"):

    def _read_once(fd: int, view: memoryview) -> int:
        return os.readv(fd, [view])

else:  # Windows

    def _read_once(fd: int, view: memoryview) -> int:
        with io.FileIO(fd, closefd=False) as f:
            return f.readinto(view) or 0


def _read_into(fd: int, view: memoryview, path: str) -> int:
    """Fills ``view`` from ``fd`` as far as the file goes; how many bytes that was."""
    total = 0
    try:
        while total < len(view):
            n = _read_once(fd, view[total:])
            if n == 0:
                break
            total += n
    except OSError as e:
        raise _failure("cannot read", e, path) from None
    return total


def _shorter(path: str, got: int, size: int) -> FileAccessError:
    why = f"is shorter than listed ({got} of {size} bytes): it changed"
    return FileAccessError(why, kind="io", path=path)


#: What a failed open or read means, in the component's categories and words.
_ERRNO: dict[int, tuple[ErrorKind, str]] = {
    errno.ENOENT: ("not-found", "no such file or directory"),
    errno.EPERM: ("permission-denied", "not permitted (outside the granted root?)"),
    errno.EACCES: ("permission-denied", "permission denied"),
    errno.ELOOP: ("permission-denied", "too many levels of symbolic links"),
    errno.EISDIR: ("wrong-type", "is a directory"),
    errno.ENOTDIR: ("wrong-type", "a parent is not a directory"),
}


def _failure(doing: str, e: OSError, path: str) -> FileAccessError:
    kind, why = _ERRNO.get(e.errno or 0, ("io", e.strerror or str(e)))
    detail = e.strerror if e.strerror and e.strerror.lower() != why else None
    return FileAccessError(
        f"{doing}: {why}" + (f": {detail}" if detail else ""), kind=kind, path=path
    )
