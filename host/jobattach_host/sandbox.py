"""Granting the component its roots and calling it: one ``Store`` per operation.

The component sees only the directories granted here, each under a guest name (``/r0``,
``/r1``, ...), read-only unless the operation writes. A Store always gets a WASI context, even
with no roots: a component that calls WASI on a Store without one aborts the whole process.

What one call gives back is bounded by the Store's hostcall fuel: wasmtime's default of 128 MiB
a call, which wasmtime-py cannot change (its C API has no setting for it). The component keeps
below it: a manifest, or any answer, over 120 MiB is refused with a ``ValidationError`` naming
the limit (``component/src/formats.rs``) rather than trapping here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import wasmtime
from wasmtime import component as wc

from . import host_files
from .component import Engine, default_engine
from .errors import AttachmentError, FileAccessError, ValidationError, from_component

#: The WIT package whose interfaces the engine exports.
PACKAGE = "jobattach:engine"
PACKAGE_VERSION = "0.1.0"

StrPath = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Grant:
    """A host directory the component may use during one operation."""

    path: Path
    writable: bool = False


class Instance:
    """One instance of the component with a fixed set of granted roots.

    Not thread-safe (a Store must not be used by two threads at once); cheap to create, so make
    one per operation or per thread.
    """

    def __init__(
        self,
        grants: Sequence[Grant] = (),
        *,
        engine: Engine | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.engine = engine or default_engine()
        self.store = wasmtime.Store(self.engine.wasm_engine)
        if memory_limit is not None:
            self.store.set_limits(memory_size=memory_limit)
        self.roots: list[str] = []
        self.host_dirs: dict[str, Path] = {}
        wasi = wasmtime.WasiConfig()
        for i, grant in enumerate(grants):
            guest = f"/r{i}"
            _preopen(wasi, grant, guest)
            self.roots.append(guest)
            self.host_dirs[guest] = grant.path
        self.store.set_wasi(wasi)
        try:
            self.instance = self.engine.linker.instantiate(self.store, self.engine.component)
        except wasmtime.WasmtimeError as e:
            raise AttachmentError(f"the engine could not start: {e}") from e
        self._funcs: dict[tuple[str, str], wc.Func] = {}

    def call(self, interface: str, name: str, *args: Any) -> Any:
        """Calls ``name`` of the exported ``interface`` and returns its ok value.

        An ``err`` result becomes the matching :class:`AttachmentError`; a trap (a bug in the
        component, or a resource limit) becomes a plain :class:`AttachmentError`.
        """
        try:
            with host_files.serving(self.host_dirs):
                result = self._func(interface, name)(self.store, *args)
        except wasmtime.WasmtimeError as trap:
            raise AttachmentError(f"the engine failed in {interface}.{name}: {trap}") from trap
        return _unwrap(result)

    def _func(self, interface: str, name: str) -> wc.Func:
        key = (interface, name)
        func = self._funcs.get(key)
        if func is None:
            iface = self.instance.get_export_index(
                self.store, f"{PACKAGE}/{interface}@{PACKAGE_VERSION}"
            )
            index = iface and self.instance.get_export_index(self.store, name, instance=iface)
            found = index and self.instance.get_func(self.store, index)
            if not isinstance(found, wc.Func):
                raise AttachmentError(f"the engine component has no export {interface}.{name}")
            self._funcs[key] = func = found
        return func


def checked_root(path: Path) -> Path:
    """``path``, once it is known to be a directory that can be reached."""
    try:
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is not a directory"
            raise FileAccessError(f"root {path} {what}", kind="not-found", path=str(path))
    except OSError as e:  # a folder above it that may not be searched
        why = f"root {path} cannot be reached: {e.strerror}"
        raise FileAccessError(why, kind="permission-denied", path=str(path)) from e
    return path


def _preopen(wasi: wasmtime.WasiConfig, grant: Grant, guest: str) -> None:
    path = checked_root(grant.path)
    try:
        wasi.preopen_dir(os.fspath(path), guest, fs_mutable=grant.writable)
    except UnicodeEncodeError:
        raise ValidationError(f"root {path!r} is not valid UTF-8", path=str(path)) from None


def _unwrap(result: Any) -> Any:
    # Exports return result<T, error>. wasmtime-py returns the payload untagged when T and
    # error map to different Python types (then a record with the error's fields is the
    # error), and a tagged Variant when both are records.
    if isinstance(result, wc.Variant) and result.tag in ("ok", "err"):
        if result.tag == "ok":
            return result.payload
        result = result.payload
    elif not _is_error(result):
        return result
    raise from_component(result.kind, result.message, getattr(result, "path", None))


def _is_error(value: Any) -> bool:
    return isinstance(value, wc.Record) and hasattr(value, "kind") and hasattr(value, "message")


def instance_for(*roots: StrPath | Grant, writable: bool = False, **kwargs: Any) -> Instance:
    """An instance granting each of ``roots`` in order: a path made absolute with its links
    resolved, a :class:`Grant` as it is (a directory's handle, say, which resolving would turn
    back into a path)."""
    # realpath, not resolve(): a loop of links raises no RuntimeError; it is not a directory.
    grants = [
        r if isinstance(r, Grant) else Grant(Path(os.path.realpath(r)), writable) for r in roots
    ]
    return Instance(grants, **kwargs)
