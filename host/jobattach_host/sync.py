"""Where a job's roots land on a worker: the component's rules, called from the host."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from .sandbox import session_for


@dataclass(frozen=True)
class PathMappingRule:
    """Maps paths under ``source_path`` (of ``source_path_format``, ``posix`` or ``windows``)
    to ``destination_path`` on this machine."""

    source_path_format: str
    source_path: str
    destination_path: str


def session_root_name(root_path: str) -> str:
    """The folder the official worker gives ``root_path`` in a session directory."""
    return str(session_for().call("sync", "session-root", root_path))


@dataclass(frozen=True)
class Layout:
    """Where objects are under a queue's root prefix (the component's rule)."""

    data_prefix: str
    data_suffix: str
    manifests_prefix: str

    def data_key(self, digest: str) -> str:
        return f"{self.data_prefix}{digest}{self.data_suffix}"


def layout(root_prefix: str) -> Layout:
    return Layout(**json.loads(session_for().call("sync", "layout", root_prefix)))


def map_path(rules: Sequence[PathMappingRule], path: str) -> str | None:
    """``path`` mapped by the most specific rule, or None when none applies."""
    text = json.dumps([[r.source_path_format, r.source_path, r.destination_path] for r in rules])
    mapped = session_for().call("sync", "map-path", text, path, os.sep)
    return None if mapped is None else str(mapped)
