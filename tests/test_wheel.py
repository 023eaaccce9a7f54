"""The wheel is pure Python, carries the component, and works where no Rust toolchain is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import xxhash

from conftest import ROOT, WASM


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(dist)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = dist.glob("*.whl")
    return built


def test_wheel_is_pure_and_carries_the_component(wheel: Path) -> None:
    assert wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert z.read("jobattach_host/jobattach.wasm") == WASM.read_bytes()
    assert {"jobattach/__init__.py", "jobattach/py.typed", "jobattach_host/py.typed"} <= names
    assert not any(n.endswith((".so", ".pyd", ".dylib")) for n in names)


def test_installed_wheel_hashes_without_a_rust_toolchain(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    clean_env = {
        "PATH": str(bin_dir),  # nothing else: no cargo, no rustc, no wasm-tools
        "HOME": str(tmp_path),
        "JOBATTACH_CACHE_DIR": str(tmp_path / "cache"),
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},
    }
    for tool in ("cargo", "rustc", "wasm-tools"):
        assert shutil.which(tool, path=clean_env["PATH"]) is None
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        env=clean_env,
        check=True,
        capture_output=True,
        timeout=600,
    )

    sample = tmp_path / "sample.bin"
    sample.write_bytes(os.urandom(300_000))
    out = subprocess.run(
        [str(bin_dir / "jobattach"), "hash", str(sample)],
        env=clean_env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{xxhash.xxh3_128_hexdigest(sample.read_bytes())}  {sample}\n"
    version = subprocess.run(
        [str(bin_dir / "jobattach"), "--version"],
        env=clean_env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert version.stdout.startswith("jobattach 0.1.0 (engine component 0.1.0, wasmtime ")
    # It runs from the installed copy, not from this checkout.
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import jobattach_host; print(jobattach_host.WASM_PATH)"],
        env=clean_env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert where.stdout.strip().startswith(str(env_dir))
