"""The compiled component is cached on disk, keyed by the .wasm and wasmtime, and self-heals."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import WASM, wasm_tools
from jobattach_host import AttachmentError, Engine, Instance


def _version(engine: Engine) -> str:
    return str(Instance(engine=engine).call("info", "version"))


def test_second_engine_loads_the_cached_artifact(tmp_path: Path) -> None:
    first = Engine(cache=tmp_path)
    assert first.cache_path is not None
    assert first.cache_path.is_file()
    stamp = first.cache_path.stat()
    second = Engine(cache=tmp_path)
    assert second.cache_path == first.cache_path
    after = second.cache_path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)  # not rewritten
    assert _version(second) == _version(first)


def test_a_damaged_cache_entry_is_recompiled(tmp_path: Path) -> None:
    path = Engine(cache=tmp_path).cache_path
    assert path is not None
    path.write_bytes(b"not a compiled component")
    engine = Engine(cache=tmp_path)
    assert _version(engine) == "0.1.0"
    assert path.read_bytes() != b"not a compiled component"


def test_the_key_follows_the_wasm_bytes(tmp_path: Path) -> None:
    renamed = tmp_path / "renamed.wasm"
    out = wasm_tools("metadata", "add", "--name", "renamed", str(WASM), "-o", str(renamed))
    assert out.returncode == 0, out.stderr
    a = Engine(cache=tmp_path / "cache").cache_path
    b = Engine(renamed, cache=tmp_path / "cache").cache_path
    assert a is not None
    assert b is not None
    assert a != b
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([a.name, b.name])


def test_an_unwritable_cache_only_costs_a_compile(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    assert _version(Engine(cache=blocker / "cache")) == "0.1.0"


def test_a_missing_component_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(AttachmentError, match="just build"):
        Engine(tmp_path / "absent.wasm", cache=tmp_path)


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    Engine(cache=tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".cwasm"]
