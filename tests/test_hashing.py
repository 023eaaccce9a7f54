"""The component's xxh3-128 equals python-xxhash's, streams in constant memory, and batches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jobattach
from jobattach_host import AttachmentError, instance_for

CHUNK = 1 << 20  # the component's read size (component/src/hash.rs), and the host's SMALL


def _reference(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


@pytest.mark.parametrize(
    "size",
    [0, 1, 15, 16, 17, 128, 129, 240, 241, 1024, 4096, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7],
)
def test_hash_file_matches_xxhash_at_boundaries(tmp_path: Path, size: int) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(size))
    assert jobattach.hash_file(path) == _reference(path)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=20_000))
def test_hash_file_matches_xxhash_for_any_content(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "any.bin"
    path.write_bytes(data)
    assert jobattach.hash_file(path) == xxhash.xxh3_128_hexdigest(data)


def test_hash_files_batches_in_order(tmp_path: Path) -> None:
    names = ["a.txt", "dir/b.bin", "dir/sub/ü ñ.exr", ".hidden/c", "spaces in name"]
    for i, name in enumerate(names):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(os.urandom(i * 1000))
    digests = jobattach.hash_files(tmp_path, names)
    assert digests == [_reference(tmp_path / n) for n in names]
    assert jobattach.hash_files(tmp_path, []) == []


def test_memory_limit_is_enforced() -> None:
    # A limit below the component's initial memory refuses it (the kernel's: test_kernel.py).
    with pytest.raises(AttachmentError, match="could not start"):
        instance_for(memory_limit=64 * 1024).call("info", "version")


def _many_files(root: Path, count: int) -> list[str]:
    names = []
    for i in range(count):
        rel = f"d{i % 7}/f{i:05d}.bin"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(os.urandom(i % 300))
        names.append(rel)
    return names


def test_parallel_batches_keep_the_order_of_paths(tmp_path: Path) -> None:
    names = _many_files(tmp_path, 1500)
    expected = [_reference(tmp_path / n) for n in names]
    assert jobattach.hash_files(tmp_path, names, workers=4) == expected
    assert jobattach.hash_files(tmp_path, names, workers=1) == expected


def test_parallel_batches_report_the_first_failing_path(tmp_path: Path) -> None:
    names = _many_files(tmp_path, 1500)
    broken = [*names[:1000], "missing/one.bin", *names[1000:], "missing/two.bin"]
    with pytest.raises(jobattach.FileAccessError) as err:
        jobattach.hash_files(tmp_path, broken, workers=4)
    assert err.value.path == "missing/one.bin"
