"""Shared fixtures: a real local S3 server, and a private compile cache for the run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WASM = ROOT / "host" / "jobattach_host" / "jobattach.wasm"
VENV_BIN = Path(sys.executable).parent
#: The golden vectors of the official implementation, in ../shared beside the repository
#: (CI puts it there) unless JOBATTACH_SHARED_DIR says otherwise.
VECTORS = Path(os.environ.get("JOBATTACH_SHARED_DIR", ROOT.parent / "shared")) / "vectors"
if not VECTORS.is_dir():
    raise RuntimeError(f"the golden vectors are missing: {VECTORS} (set JOBATTACH_SHARED_DIR)")


@pytest.fixture(scope="session", autouse=True)
def _private_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Keeps the run from reading or writing the user's cache of compiled components.
    os.environ["JOBATTACH_CACHE_DIR"] = str(tmp_path_factory.mktemp("compile-cache"))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on loopback, started for this test run."""
    from jobattach.local_s3 import LocalS3Server

    with LocalS3Server() as server:
        yield server.endpoint_url


def wasm_tools(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs the wasm-tools installed in the test environment."""
    return subprocess.run(
        [str(VENV_BIN / "wasm-tools"), *args], capture_output=True, text=True, check=False
    )
