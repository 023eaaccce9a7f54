"""The worker side: bring a job's inputs to this machine.

``sync_inputs`` reads the job's input manifests, decides where each root lands (a path
mapping rule, or the worker's ``assetroot-…`` folder in the session directory), merges the
manifests of one root (later ones win), and downloads what is missing straight to files.
Every file is written under a temporary name, checked against its hash by the component, and
renamed into place, its mtime set to the manifest's exact microseconds: an interrupted sync
leaves no partial file under a final name, and content that does not match its hash is never
left in place.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobattach_host import hash_files
from jobattach_host.errors import FileAccessError, StorageError, ValidationError
from jobattach_host.storage import Bucket, S3Config
from jobattach_host.sync import Layout, PathMappingRule, layout, map_path, session_root_name

from .manifest import Manifest, ManifestEntry, merge_manifests
from .submit import S3Location

#: What to do with a file that exists and differs from the manifest.
CONFLICT_POLICIES = ("overwrite", "skip", "error")
_STAGING = ".jobattach-staging"


@dataclass(frozen=True)
class SyncInputsResult:
    #: Each job root (its rootPath) and the local directory it landed in.
    roots: dict[str, str]
    files: int
    bytes: int
    downloaded_files: int
    downloaded_bytes: int
    #: Files already present with the same size, mtime and hash.
    unchanged_files: int
    #: Local files that differed from the manifest, by policy outcome: overwritten, skipped.
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0


def sync_inputs(
    s3_location: S3Location,
    attachments: dict[str, Any],
    session_dir: str | os.PathLike[str],
    *,
    path_mapping_rules: Sequence[PathMappingRule] = (),
    on_conflict: str = "overwrite",
    s3: S3Config | None = None,
) -> SyncInputsResult:
    """Downloads a job's inputs (see the module's doc) and says what it did."""
    if on_conflict not in CONFLICT_POLICIES:
        raise ValidationError(f"on_conflict must be one of {', '.join(CONFLICT_POLICIES)}")
    t0 = time.perf_counter()
    bucket = Bucket(s3_location.bucket, s3 or S3Config())
    where = layout(s3_location.root_prefix)
    by_dest: dict[Path, list[Manifest]] = {}
    roots: dict[str, str] = {}
    for props in attachments.get("manifests", []):
        dest = _destination(props, Path(session_dir), path_mapping_rules)
        roots[props["rootPath"]] = str(dest)
        if props.get("inputManifestPath"):
            data, _ = bucket.get_bytes(where.manifests_prefix + props["inputManifestPath"])
            by_dest.setdefault(dest, []).append(Manifest.decode(data))  # validates every path
    totals = {
        "files": 0,
        "bytes": 0,
        "downloaded_files": 0,
        "downloaded_bytes": 0,
        "unchanged_files": 0,
    }
    conflicts: dict[str, list[str]] = {}
    plans = [
        (dest, _plan(dest, merge_manifests(ms), on_conflict, conflicts, totals))
        for dest, ms in by_dest.items()
    ]
    for dest, todo in plans:  # nothing is written before every root's plan stands
        _download(bucket, where, dest, todo, totals)
    return SyncInputsResult(
        roots=roots, conflicts=conflicts, seconds=time.perf_counter() - t0, **totals
    )


def _destination(
    props: dict[str, Any], session_dir: Path, rules: Sequence[PathMappingRule]
) -> Path:
    root = props["rootPath"]
    mapped = map_path(rules, root) if rules else None
    if mapped is not None:
        return Path(mapped)
    if props.get("fileSystemLocationName"):
        raise ValidationError(
            f"no path mapping rule maps {root!r} (file system location"
            f" {props['fileSystemLocationName']!r})"
        )
    return session_dir / session_root_name(root)


def _plan(
    dest: Path,
    manifest: Manifest,
    on_conflict: str,
    conflicts: dict[str, list[str]],
    totals: dict[str, int],
) -> list[ManifestEntry]:
    """The entries to download; counts the rest."""
    entries = [e for e in manifest.entries if e.hash is not None]
    totals["files"] += len(entries)
    totals["bytes"] += sum(e.size or 0 for e in entries)
    same_stat, differing, todo = [], [], []
    for e in entries:
        try:
            st = os.lstat(dest / e.path)
        except FileNotFoundError:
            todo.append(e)
            continue
        except NotADirectoryError:
            differing.append(e)
            continue
        if (
            st.st_size == e.size
            and st.st_mtime_ns // 1000 == e.mtime
            and os.path.isfile(dest / e.path)
        ):
            same_stat.append(e)
        else:
            differing.append(e)
    if same_stat:  # same size and mtime: the hash decides
        digests = hash_files(dest, [(e.path, e.size or 0) for e in same_stat])
        for e, d in zip(same_stat, digests):
            if d == e.hash:
                totals["unchanged_files"] += 1
            else:
                differing.append(e)
    if differing and on_conflict == "error":
        names = ", ".join(str(dest / e.path) for e in differing)
        raise ValidationError(f"local files differ from the job's inputs: {names}")
    outcome = "overwritten" if on_conflict == "overwrite" else "skipped"
    if differing:
        conflicts.setdefault(outcome, []).extend(str(dest / e.path) for e in differing)
    return todo + (differing if on_conflict == "overwrite" else [])


def _download(
    bucket: Bucket, where: Layout, dest: Path, todo: list[ManifestEntry], totals: dict[str, int]
) -> None:
    """Downloads each distinct content once, in parallel, checks them all in one batched call
    to the component, then puts each file in place."""
    if not todo:
        return
    staging = dest / _STAGING
    staging.mkdir(parents=True, exist_ok=True)
    real_dest = os.path.realpath(dest)
    by_hash: dict[str, list[ManifestEntry]] = {}
    for e in todo:
        by_hash.setdefault(str(e.hash), []).append(e)
    digests = list(by_hash)
    try:
        workers = max(1, bucket.config.options.max_pool_connections // 2)
        with ThreadPoolExecutor(workers, thread_name_prefix="s3-download") as pool:

            def fetch(digest: str) -> None:
                bucket.download_file(where.data_key(digest), staging / digest)

            list(pool.map(fetch, digests))
        for digest, got in zip(digests, hash_files(staging, digests)):
            if got != digest:
                key = where.data_key(digest)
                why = f"the content of {key} does not match its hash (it hashes to {got})"
                raise StorageError(why, path=key)
        for digest, entries in by_hash.items():
            for i, e in enumerate(entries):
                _place(staging / digest, dest / e.path, real_dest, last=i == len(entries) - 1)
                mtime_ns = int(e.mtime or 0) * 1000
                os.utime(dest / e.path, ns=(mtime_ns, mtime_ns))
                totals["downloaded_files"] += 1
                totals["downloaded_bytes"] += e.size or 0
    except OSError as e:
        why = f"cannot write the job's inputs: {e.strerror}"
        raise FileAccessError(why, path=e.filename) from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _place(staged: Path, target: Path, real_dest: str, *, last: bool) -> None:
    """Puts a verified file at ``target`` by rename, never writing outside ``real_dest``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    real_parent = os.path.realpath(target.parent)
    if os.path.commonpath([real_dest, real_parent]) != real_dest:
        raise ValidationError(f"{target} would be written outside {real_dest} (a symlink?)")
    if target.is_dir() and not target.is_symlink():
        raise FileAccessError("a directory stands where a job's input file goes", path=str(target))
    temporary = target.with_name(f".{target.name}.jobattach-tmp")
    if last:
        os.replace(staged, temporary)
    else:
        shutil.copyfile(staged, temporary)
    os.replace(temporary, target)
