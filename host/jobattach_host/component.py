"""Loading the engine component: locate the ``.wasm``, compile it once per process, cache it.

Compiling takes seconds, so the compiled artifact is kept on disk keyed by the ``.wasm``'s hash,
the wasmtime version and the engine settings; a stale or damaged cache entry is recompiled.
The hashing kernel (``kernel.py``) is compiled by the same engine and cached the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Callable, TypeVar

import wasmtime
from wasmtime import component as wc

from . import host_files
from .errors import AttachmentError
from .installed import WASM_PATH as WASM_PATH
from .installed import cache_dir as cache_dir

# Inside a DCC application the host process owns the signal handlers; explicit bounds checks
# cost little for this workload and keep wasmtime from installing its own.
_SETTINGS = "signals_based_traps=0"


def _wasmtime_build() -> str:
    """What identifies the installed wasmtime for the compile cache, at the cost of a stat: a
    reinstall only recompiles once, and wasmtime refuses an artifact of another build anyway."""
    st = os.stat(wasmtime.__file__)
    return f"{wasmtime.__file__}:{st.st_size}:{st.st_mtime_ns}"


class Engine:
    """The compiled engine component and a linker that grants it WASI.

    Thread-safe to share: every operation makes its own ``wasmtime.Store``. Make one with
    :func:`default_engine` rather than directly, so the component is compiled once per process.
    """

    def __init__(self, wasm_path: Path = WASM_PATH, *, cache: Path | None = None) -> None:
        try:
            wasm = wasm_path.read_bytes()
        except FileNotFoundError:
            raise AttachmentError(
                f"the engine component is missing at {wasm_path}; build it with `just build`"
            ) from None
        config = wasmtime.Config()
        config.signals_based_traps = False
        self.wasm_engine = wasmtime.Engine(config)
        self.wasm_sha256 = hashlib.sha256(wasm).hexdigest()
        self.cache = cache if cache is not None else cache_dir()
        self.cache_path = self.cache / f"engine-{self._key(self.wasm_sha256)}.cwasm"
        self.component = compiled(
            self.cache_path,
            lambda path: wc.Component.deserialize_file(self.wasm_engine, path),
            lambda: wc.Component(self.wasm_engine, wasm),
        )
        self.linker = wc.Linker(self.wasm_engine)
        self.linker.add_wasip2()
        host_files.define(self.linker)

    def _key(self, sha256: str) -> str:
        """What a compiled artifact, for this engine, of the ``.wasm`` whose SHA-256 is
        ``sha256`` is cached under."""
        text = f"{sha256}|wasmtime-{_wasmtime_build()}|{_SETTINGS}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def compiled_module(self, wasm: bytes, name: str) -> wasmtime.Module:
        """The core module ``wasm`` compiled for this engine, through the same cache."""
        return compiled(
            self.cache / f"{name}-{self._key(hashlib.sha256(wasm).hexdigest())}.cwasm",
            lambda path: wasmtime.Module.deserialize_file(self.wasm_engine, path),
            lambda: wasmtime.Module(self.wasm_engine, wasm),
        )


Compiled = TypeVar("Compiled", wc.Component, wasmtime.Module)


def compiled(
    path: Path, load: Callable[[str], Compiled], compile: Callable[[], Compiled]
) -> Compiled:
    """What ``load`` reads from the cache file ``path``, else what ``compile`` makes (then
    written there for the next process)."""
    if path.is_file():
        try:
            return load(str(path))
        except wasmtime.WasmtimeError:
            pass  # damaged or from an incompatible build: compile afresh below
    made = compile()
    _write_atomically(path, bytes(made.serialize()))
    return made


def _write_atomically(path: Path, data: bytes) -> None:
    """Writes ``data`` so that readers see the old file or the whole new one, never a part."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError:
        return  # a cache that cannot be written only costs the next process a compile
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


_default: Engine | None = None
_default_lock = threading.Lock()


def default_engine() -> Engine:
    """The process-wide engine, compiled (or loaded from the cache) on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Engine()
        return _default
