"""The jobattach command line, run as users run it."""

from __future__ import annotations

import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

import xxhash

from conftest import VENV_BIN


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "jobattach"), *args], capture_output=True, text=True, check=False
    )


def test_version_names_package_engine_and_wasmtime() -> None:
    out = _cli("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        f"jobattach {metadata.version('jobattach')} (engine component 0.1.0,"
        f" wasmtime {metadata.version('wasmtime')})"
    )


def test_hash_prints_digests_like_xxh128sum(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        f = tmp_path / f"f{i}.bin"
        f.write_bytes(os.urandom(1000 * i + 1))
        files.append(f)
    out = _cli("hash", *map(str, files))
    assert out.returncode == 0, out.stderr
    expected = [f"{xxhash.xxh3_128_hexdigest(f.read_bytes())}  {f}" for f in files]
    assert out.stdout.splitlines() == expected
    as_json = json.loads(_cli("hash", "--json", str(files[1])).stdout)
    assert as_json == {str(files[1]): xxhash.xxh3_128_hexdigest(files[1].read_bytes())}


def test_hash_of_a_missing_file_fails_with_a_clear_message(tmp_path: Path) -> None:
    out = _cli("hash", str(tmp_path / "nope.exr"))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"jobattach: error: {tmp_path / 'nope.exr'}: cannot open: no such file or directory"
    )
    assert out.stdout == ""
