"""Where a job's objects are and where its roots land: the component's rules, called from the
host."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
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


def outputs_prefix(
    root_prefix: str, farm_id: str, queue_id: str, job_id: str, step_id: str = "", task_id: str = ""
) -> str:
    """Where the output manifests of a job (or of one step, or one task of a step) are."""
    request = {
        "root_prefix": root_prefix,
        "farm_id": farm_id,
        "queue_id": queue_id,
        "job_id": job_id,
        "step_id": step_id,
        "task_id": task_id,
    }
    return str(session_for().call("sync", "outputs-prefix", json.dumps(request)))


def select_outputs(listing: Sequence[tuple[str, int]]) -> list[str]:
    """The output manifests to read from a listing of ``(key, last modified in µs)``, oldest
    first: each task's latest session action's, and all of steps without tasks."""
    chosen = session_for().call("sync", "select-outputs", json.dumps(listing))
    return list(json.loads(chosen))


def manifest_root(metadata: Mapping[str, str]) -> str | None:
    """The root a manifest object names in its user metadata."""
    root = session_for().call("sync", "manifest-root", json.dumps(dict(metadata)))
    return None if root is None else str(root)
