"""The compiled component is cached on disk, keyed by the .wasm and wasmtime, and self-heals."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def _cache_of(env: dict[str, str], cwd: Path) -> Any:
    script = """
import json
from jobattach_host import default_engine
print(json.dumps(str(default_engine().cache_path)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("home", ["", "/"])
def test_no_home_never_means_writing_to_the_root_and_the_engine_is_compiled_once(
    tmp_path: Path, home: str
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("JOBATTACH_CACHE_DIR", "XDG_CACHE_HOME")
    }
    env.update(HOME=home, TMPDIR=str(temp))
    first = Path(_cache_of(env, tmp_path))
    assert first.parent == temp / f"jobattach-{os.getuid()}"
    assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700
    stamp = first.stat().st_mtime_ns
    assert Path(_cache_of(env, tmp_path)) == first
    assert first.stat().st_mtime_ns == stamp  # the second process loaded it: no compile
    assert not (tmp_path / ".cache").exists()


def test_an_unwritable_cache_folder_falls_back_to_a_private_temporary_one(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    env = {k: v for k, v in os.environ.items() if k != "JOBATTACH_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "a-file" / "cache"), TMPDIR=str(temp))
    assert Path(_cache_of(env, tmp_path)).parent == temp / f"jobattach-{os.getuid()}"
    # Another user's (or a loosened) folder there is never used: a compiled artifact runs.
    (temp / f"jobattach-{os.getuid()}").chmod(0o777)
    elsewhere = Path(_cache_of(env, tmp_path)).parent
    assert elsewhere.parent == temp
    assert elsewhere.name != f"jobattach-{os.getuid()}"
