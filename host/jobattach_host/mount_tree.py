"""A root's tree for a VIRTUAL mount: the component's ``mount.tree`` resource, in an instance
of its own (``wit/mount.wit``).

Paths are relative to the root (``""`` is the root itself) and may hold lone surrogates, as
``os.fsdecode`` spells a name's bytes that are not UTF-8; they cross as JSON strings, where
such a name is the manifests' ``\\udcXX``. The tree's refusals are ``OSError``s with the errno
a file system answers with.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from typing import Any, Literal

import wasmtime
from wasmtime import component as wc

from .errors import AttachmentError
from .sandbox import PACKAGE, PACKAGE_VERSION, Instance, _unwrap

#: The kinds of node: a directory, a manifest's file, a layer file, a symlink.
NodeKind = Literal["d", "f", "l", "s"]

_ERRNO = {
    "not-found": errno.ENOENT,
    "exists": errno.EEXIST,
    "not-directory": errno.ENOTDIR,
    "is-directory": errno.EISDIR,
    "not-empty": errno.ENOTEMPTY,
    "invalid": errno.EINVAL,
}
_KIND: dict[str, NodeKind] = {"directory": "d", "object": "f", "layer": "l", "symlink": "s"}


@dataclass(frozen=True)
class Node:
    """What stands at a path: ``ref`` is a manifest file's digest, a layer file's number or a
    symlink's target (relative to its folder), None for a directory. A layer file's size,
    mtime and mode are its file's own (here 0 and False)."""

    id: int
    kind: NodeKind
    size: int
    mtime_us: int
    executable: bool
    ref: str | int | None


class MountTree:
    """One root's tree (``manifest``: v2023-03-03 or a v2025-12 snapshot), its folders made at
    ``now_us``. Not thread-safe: callers hold a lock around each call."""

    def __init__(self, manifest: str, now_us: int) -> None:
        self._instance = Instance()
        store = self._instance.store
        found = self._instance.instance.get_export_index(
            store, f"{PACKAGE}/mount@{PACKAGE_VERSION}"
        )
        self._funcs: dict[str, wc.Func] = {}
        for name in ("lookup", "entries", "create", "copy-up", "remove", "rename", "layer"):
            self._funcs[name] = self._func(found, f"[method]tree.{name}")
        self._tree = _unwrap(self._call(self._func(found, "[static]tree.open"), manifest, now_us))

    def _func(self, interface: Any, name: str) -> wc.Func:
        store = self._instance.store
        index = interface and self._instance.instance.get_export_index(
            store, name, instance=interface
        )
        func = index and self._instance.instance.get_func(store, index)
        if not isinstance(func, wc.Func):
            raise AttachmentError(f"the engine component has no export mount.{name}")
        return func

    def _call(self, func: wc.Func, *args: Any) -> Any:
        try:
            return func(self._instance.store, *args)
        except wasmtime.WasmtimeError as trap:
            raise AttachmentError(f"the engine failed in the mount's tree: {trap}") from trap

    def _method(self, name: str, *paths: str, args: tuple[Any, ...] = ()) -> Any:
        result = self._call(self._funcs[name], self._tree, *map(json.dumps, paths), *args)
        # result<T, fs-error>: wasmtime-py tags it only when T is a string too (`entries`).
        if isinstance(result, wc.Variant) and result.tag in ("ok", "err"):
            if result.tag == "ok":
                return result.payload
            result = _Refused(str(result.payload))
        elif isinstance(result, str) and result in _ERRNO:
            result = _Refused(result)
        if isinstance(result, _Refused):
            code = _ERRNO[result.name]
            raise OSError(code, os.strerror(code), *paths[:1], None, *paths[1:])
        return result

    def lookup(self, path: str) -> Node:
        return _node(self._method("lookup", path))

    def entries(self, path: str) -> list[tuple[str, Node]]:
        """The directory's entries in name order."""
        rows = json.loads(self._method("entries", path))
        return [
            (name, Node(i, kind, size, mtime, x, ref))
            for name, i, kind, size, mtime, x, ref in rows
        ]

    def create(self, path: str, *, directory: bool, now_us: int) -> Node:
        return _node(self._method("create", path, args=(directory, now_us)))

    def copy_up(self, path: str) -> Node:
        return _node(self._method("copy-up", path))

    def remove(self, path: str, *, directory: bool) -> int | None:
        got: int | None = self._method("remove", path, args=(directory,))
        return got

    def rename(self, source: str, target: str) -> int | None:
        got: int | None = self._method("rename", source, target)
        return got

    def layer(self) -> list[tuple[str, int]]:
        """Every layer file and its path, in path order: what the task wrote."""
        text = self._call(self._funcs["layer"], self._tree)
        return [(path, number) for path, number in json.loads(text)]


@dataclass(frozen=True)
class _Refused:
    name: str


def _node(r: Any) -> Node:
    content = r.content
    return Node(
        id=r.id,
        kind=_KIND[content.tag],
        size=r.size,
        mtime_us=getattr(r, "mtime-us"),
        executable=r.executable,
        ref=content.payload,
    )
