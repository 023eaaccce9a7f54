"""What is installed, found without starting wasmtime: the engine component's file, the cache
directory, and the versions ``jobattach --version`` shows.

Importing wasmtime and instantiating the component cost a command several times Python's own
start-up, so the component's answer to ``info.version`` is remembered in the cache directory
under the hash of its ``.wasm`` (which fixes the answer), and wasmtime's version is read from
the metadata installed beside the module ``import wasmtime`` would load.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
from pathlib import Path

#: The component shipped inside this package (built by ``just build``).
WASM_PATH = Path(__file__).with_name("jobattach.wasm")


def cache_dir() -> Path:
    """Where compiled components are kept: ``$JOBATTACH_CACHE_DIR``, else the user cache dir."""
    env = os.environ.get("JOBATTACH_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jobattach"


def wasmtime_version() -> str:
    """The version of the wasmtime package that ``import wasmtime`` loads."""
    spec = importlib.util.find_spec("wasmtime")  # finds the module without running it
    if spec is not None and spec.origin is not None:
        site = Path(spec.origin).parent.parent
        found = [_dist_version(d) for d in site.glob("wasmtime-*.dist-info")]
        if len(found) == 1 and found[0] is not None:
            return found[0]
    # Not installed as one wheel beside its module: ask the import system's metadata, which
    # costs a command about 40 ms to import.
    from importlib import metadata

    return metadata.version("wasmtime")


def _dist_version(dist_info: Path) -> str | None:
    """The ``Version`` a wheel's ``METADATA`` names, when it is wasmtime's."""
    headers: dict[str, str] = {}
    try:
        with open(dist_info / "METADATA", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # the headers end at the first blank line
                name, _, value = line.partition(":")
                headers.setdefault(name, value.strip())
    except (OSError, UnicodeDecodeError):
        return None
    return headers.get("Version") if headers.get("Name", "").lower() == "wasmtime" else None


def engine_version() -> str:
    """The engine component's version, as it reports it (``info.version``)."""
    try:
        digest = hashlib.sha256(WASM_PATH.read_bytes()).hexdigest()
    except OSError:
        digest = ""  # asking the component below raises the error that names the fix
    remembered = cache_dir() / f"engine-{digest[:32]}.version"
    if digest:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            return remembered.read_text(encoding="utf-8")
    from .component import _write_atomically, default_engine
    from .engine import version

    answer = version()
    if default_engine().wasm_sha256 == digest:  # the file asked is the one hashed above
        _write_atomically(remembered, answer.encode())
    return answer
