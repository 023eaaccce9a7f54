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
import stat
import tempfile
from pathlib import Path

#: The component shipped inside this package (built by ``just build``).
WASM_PATH = Path(__file__).with_name("jobattach.wasm")


def cache_dir() -> Path:
    """Where compiled components and the caches are kept: ``$JOBATTACH_CACHE_DIR``; else the
    user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``, when it is an absolute path
    other than ``/`` and can be written); else a private folder of this user's in the
    temporary directory, so that a process whose home cannot be written (inside a host
    application, say) still compiles the engine once, not each time."""
    env = os.environ.get("JOBATTACH_CACHE_DIR")
    if env:
        return Path(env)
    home = os.path.expanduser("~")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    if os.path.isabs(base) and base != os.path.join(os.sep, ".cache"):  # HOME="" means "/"
        user = Path(base) / "jobattach"
        with contextlib.suppress(OSError):
            user.mkdir(parents=True, exist_ok=True)
            if os.access(user, os.W_OK | os.X_OK):
                return user
    return _private_temp()


def _private_temp() -> Path:
    """``jobattach-<uid>`` in the temporary directory, made mode 0700; where another user
    could have made or changed it (a compiled artifact there would be run), a new private
    folder instead."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    folder = Path(tempfile.gettempdir()) / f"jobattach-{uid if uid is not None else 'user'}"
    with contextlib.suppress(OSError):
        folder.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(folder)
        ours = uid is None or (st.st_uid == uid and not st.st_mode & 0o077)
        if stat.S_ISDIR(st.st_mode) and ours:
            return folder
    return Path(tempfile.mkdtemp(prefix="jobattach-"))


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
