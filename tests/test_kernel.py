"""The hashing kernel gives python-xxhash's digests at every boundary its host and xxh3 have,
imports nothing, and keeps its memory constant whatever the file's size."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import wasmtime
import xxhash

import jobattach
from jobattach import FileAccessError
from jobattach_host import default_engine
from jobattach_host.hashing import PIECE, SMALL, digests
from jobattach_host.kernel import BUFFER, KERNEL_PATH, SPANS

MIB = 1 << 20
#: The newer format's chunk size (component/src/manifest_v2025.rs).
CHUNK_V2025 = 256 * MIB
#: Where xxh3 changes strategy (16, 128, 240 bytes; 64-byte stripes, 1 KiB blocks), where
#: the host's laying out and piecing change (SMALL, BUFFER), and one byte around each.
BOUNDARIES = sorted(
    {
        n + d
        for n in (0, 16, 128, 240, 64 * 16, 1024, SMALL, PIECE, BUFFER, 2 * BUFFER, 3 * PIECE)
        for d in (-1, 0, 1)
        if n + d >= 0
    }
)


def _reference(path: Path, start: int = 0, length: int | None = None) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        f.seek(start)
        left = os.path.getsize(path) - start if length is None else length
        while left > 0:
            block = f.read(min(MIB, left))
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def _sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes, mostly a hole, with bytes written around every piece the
    host reads (so a piece hashed twice or skipped changes the digest)."""
    with open(path, "wb") as f:
        f.truncate(size)
        for at in range(0, size, BUFFER):
            for off in (at - 1, at):
                if 0 <= off < size:
                    f.seek(off)
                    f.write(bytes([off * 7 % 251 + 1]))
        if size:
            f.seek(size - 1)
            f.write(b"\xfe")
    return path


def test_the_kernel_imports_nothing() -> None:
    module = wasmtime.Module(default_engine().wasm_engine, KERNEL_PATH.read_bytes())
    assert list(module.imports) == []
    exported = {e.name for e in module.exports}
    assert {"memory", "reserve", "digests", "update", "finish"} <= exported


def test_digests_match_xxhash_around_every_boundary(tmp_path: Path) -> None:
    names, expected = [], []
    for n in BOUNDARIES:
        name = f"f{n}"
        (tmp_path / name).write_bytes(os.urandom(n))
        names.append(name)
        expected.append(_reference(tmp_path / name))
    sized = [(name, n) for name, n in zip(names, BOUNDARIES)]
    assert jobattach.hash_files(tmp_path, names) == expected  # stat, read to the end
    assert jobattach.hash_files(tmp_path, sized) == expected  # sizes from a listing
    assert jobattach.hash_files(tmp_path, sized, workers=1) == expected
    for name, digest in zip(names, expected):
        assert jobattach.hash_file(tmp_path / name) == digest


def test_many_small_files_fill_the_buffer_and_the_span_table(tmp_path: Path) -> None:
    """More files than one call's span table holds, and more bytes than its buffer."""
    sizes = [i % 97 for i in range(SPANS + 300)] + [BUFFER // 3] * 4 + [5, BUFFER - 1, 7]
    items = []
    for i, n in enumerate(sizes):
        (tmp_path / f"s{i:05d}").write_bytes(os.urandom(n))
        items.append((f"s{i:05d}", n))
    expected = [_reference(tmp_path / p) for p, _ in items]
    assert jobattach.hash_files(tmp_path, items, workers=1) == expected
    assert jobattach.hash_files(tmp_path, items, workers=3) == expected


@pytest.mark.parametrize("size", [0, CHUNK_V2025, CHUNK_V2025 + 1])
def test_large_and_empty_files_whole_and_in_chunks(tmp_path: Path, size: int) -> None:
    path = _sparse(tmp_path / "big", size)
    whole = _reference(path)
    assert jobattach.hash_files(tmp_path, ["big", ("big", size)]) == [whole, whole]
    chunked = [
        _reference(path, at, min(CHUNK_V2025, size - at)) for at in range(0, size, CHUNK_V2025)
    ]
    assert digests(tmp_path, [("big", size, CHUNK_V2025)]) == [chunked]


@pytest.mark.parametrize("chunk", [1000, PIECE - 1, PIECE, PIECE + 1, BUFFER + 1])
def test_chunked_digests_at_chunk_and_piece_boundaries(tmp_path: Path, chunk: int) -> None:
    items, expected = [], []
    for size in sorted({chunk - 1, chunk, chunk + 1, 2 * chunk, 2 * chunk + 1, BUFFER + 1}):
        path = tmp_path / f"c{size}"
        path.write_bytes(os.urandom(size))
        items.append((path.name, size, chunk))
        expected.append(
            [_reference(path, at, min(chunk, size - at)) for at in range(0, size, chunk)]
        )
    assert digests(tmp_path, items) == expected


def test_names_that_are_not_utf8(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path)
    os.mkdir(os.path.join(raw, b"dir-\xe9"))
    for name, size in ((b"dir-\xe9/f-\xff\xfe", 10), (b"big-\x80", BUFFER + 5)):
        with open(os.path.join(raw, name), "wb") as f:
            f.write(os.urandom(size))
    paths = ["dir-\udce9/f-\udcff\udcfe", "big-\udc80"]
    expected = [_reference(Path(os.fsdecode(os.path.join(raw, os.fsencode(p))))) for p in paths]
    assert jobattach.hash_files(tmp_path, paths) == expected


def test_memory_stays_constant_for_a_large_file(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "big", CHUNK_V2025 + 1)
    # The buffer and the module's own megabyte or so: far below the file's size.
    assert jobattach.hash_file(path, memory_limit=BUFFER + 2 * MIB) == _reference(path)
    with pytest.raises(jobattach.AttachmentError, match="could not start"):
        jobattach.hash_file(path, memory_limit=BUFFER // 2)  # shows the limit is real


def test_a_file_shorter_than_listed_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(b"12345")
    for size in (6, BUFFER + 1):
        with pytest.raises(FileAccessError, match="shorter than listed") as err:
            jobattach.hash_files(tmp_path, [("short", size)])
        assert (err.value.kind, err.value.path) == ("io", "short")
    # Longer than listed: exactly the listed bytes, as the manifest records that size.
    assert jobattach.hash_files(tmp_path, [("short", 3)]) == [xxhash.xxh3_128_hexdigest(b"123")]


def test_a_directory_listed_as_a_file_is_the_wrong_type(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for item in ("d", ("d", 10)):
        with pytest.raises(FileAccessError) as err:
            jobattach.hash_files(tmp_path, [item])
        assert err.value.kind == "wrong-type"


#: Hashes a FIFO nobody writes to, named plainly and with a size; prints each error.
FIFO = """
import sys
import jobattach
for item in ("fifo", ("fifo", 10)):
    try:
        jobattach.hash_files(sys.argv[1], [item])
    except jobattach.FileAccessError as e:
        print(e.kind, e)
"""


def test_a_fifo_fails_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    run = subprocess.run(
        [sys.executable, "-c", FIFO, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    first, second = run.stdout.splitlines()
    assert first.startswith("wrong-type")
    assert "not a regular file" in first
    assert second.startswith("io")
    assert "shorter than listed" in second


def test_large_and_small_files_mixed_keep_their_order(tmp_path: Path) -> None:
    sizes = [10, SMALL + 1, 20, 3 * BUFFER + 3, 0, SMALL, SMALL - 1, 2 * BUFFER, 7]
    items = []
    for i, n in enumerate(sizes):
        _sparse(tmp_path / f"m{i}", n) if n > SMALL else (tmp_path / f"m{i}").write_bytes(
            os.urandom(n)
        )
        items.append((f"m{i}", n))
    expected = [_reference(tmp_path / p) for p, _ in items]
    for workers in (1, 2, 4):
        assert jobattach.hash_files(tmp_path, items, workers=workers) == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_a_file_longer_than_its_stat_says_is_read_to_its_end() -> None:
    # /proc/self/cmdline stats as 0 bytes and holds this process's command line.
    with open("/proc/self/cmdline", "rb") as f:
        expected = xxhash.xxh3_128_hexdigest(f.read())
    assert jobattach.hash_files("/proc/self", ["cmdline"]) == [expected]
    assert jobattach.hash_file("/proc/self/cmdline") == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /sys")
def test_a_file_shorter_than_its_stat_says_is_hashed_as_it_reads() -> None:
    # sysfs stats its files as a page (4096 bytes) and holds a few bytes: named without a
    # size, a file is hashed to its end, however short that comes.
    folder, name = "/sys/devices/system/cpu", "online"
    with open(f"{folder}/{name}", "rb") as f:
        content = f.read()
    assert len(content) < os.stat(f"{folder}/{name}").st_size
    assert jobattach.hash_files(folder, [name]) == [xxhash.xxh3_128_hexdigest(content)]


def test_a_large_file_tells_its_progress_piece_by_piece_and_stops_when_cancelled(
    tmp_path: Path,
) -> None:
    path = _sparse(tmp_path / "big", 3 * PIECE + 1)
    (tmp_path / "small").write_bytes(b"x" * 100)
    told: list[int] = []
    digests(tmp_path, [("big", 3 * PIECE + 1), ("small", 100)], hashed=told.append, workers=1)
    assert sorted(told) == sorted([PIECE, PIECE, PIECE, 1, 100])
    stop = threading.Event()
    told.clear()

    def cancel_after_one(n: int) -> None:
        told.append(n)
        stop.set()

    with pytest.raises(jobattach.Cancelled):
        digests(tmp_path, [("big", path.stat().st_size)], hashed=cancel_after_one, cancelled=stop)
    assert told == [PIECE]  # the file's other pieces were never hashed
