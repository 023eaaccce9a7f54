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

import contextlib
import dataclasses
import os
import stat
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from jobattach_host import engine, hash_files
from jobattach_host.choices import ConflictPolicy, FileSystemMode, check_choice
from jobattach_host.destination import Directory, Staging, Tree, grant_of, open_root
from jobattach_host.engine import (
    DestinationPlan,
    DownloadDestination,
    DownloadPlan,
    Found,
    HashFirst,
    Placement,
    download_plan,
    output_patterns,
)
from jobattach_host.errors import Cancelled, FileAccessError, StorageError, ValidationError
from jobattach_host.s3config import S3Config
from jobattach_host.storage import Bucket, Transfer
from jobattach_host.sync import (
    Layout,
    PathMappingRule,
    check_holdable,
    layout,
    manifest_root,
    map_path,
    outputs_prefix,
    select_outputs,
    session_root_name,
)
from jobattach_host.upload import Content, Tally, upload_contents

from . import virtual
from .manifest import Manifest, manifest_outputs, merge_manifests
from .progress import ProgressCallback, Reporter
from .snapshot import create_manifest
from .submit import S3Location
from .virtual import MountError

#: What to do with a file that exists and differs from the manifest.
CONFLICT_POLICIES: tuple[ConflictPolicy, ...] = get_args(ConflictPolicy)


@dataclass(frozen=True)
class DownloadResult:
    """What a download of a job's inputs or outputs did."""

    #: Each job root (its rootPath) and the local directory it landed in.
    roots: dict[str, str]
    #: The files of the merged manifests, and their bytes.
    total_files: int
    total_bytes: int
    #: Files written (a content shared by several files is downloaded once), and their bytes.
    processed_files: int
    processed_bytes: int
    #: Files already present with the same size, mtime and hash.
    skipped_files: int
    #: Local files that differed from the manifest, by policy outcome: ``overwritten`` or
    #: ``skipped`` (those left as they are, ``on_conflict="skip"``, are not in
    #: ``skipped_files``).
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    #: Seconds the download took.
    total_time: float = 0.0
    #: Each job root's merged manifest: for inputs, what sync_outputs compares outputs against.
    manifests: dict[str, Manifest] = field(default_factory=dict, repr=False)
    #: ``COPIED``, or ``VIRTUAL`` when the roots are mounted instead (nothing is downloaded
    #: then: a file is fetched on its first read); :func:`unmount` takes the mounts away.
    file_system: FileSystemMode = "COPIED"


def _manifests_of(attachments: object) -> list[dict[str, Any]]:
    """The job's ``attachments["manifests"]``, checked to be what CreateJob takes."""
    bad = ValidationError(
        "attachments must be an object whose manifests each have a rootPath string"
        " (the JSON that submit_bundle_attachments returns)"
    )
    if not isinstance(attachments, dict):
        raise bad
    manifests = attachments.get("manifests", [])
    if not isinstance(manifests, list) or not all(
        isinstance(m, dict) and isinstance(m.get("rootPath"), str) for m in manifests
    ):
        raise bad
    return manifests


def sync_inputs(
    s3_location: S3Location,
    attachments: dict[str, Any],
    session_dir: str | os.PathLike[str],
    *,
    path_mapping_rules: Sequence[PathMappingRule] = (),
    on_conflict: ConflictPolicy = "overwrite",
    s3: S3Config | None = None,
    progress_callback: ProgressCallback | None = None,
    file_system: FileSystemMode | None = None,
    fallback: bool = True,
    cache_limit: int = virtual.DEFAULT_CACHE_LIMIT,
) -> DownloadResult:
    """Downloads a job's inputs (see the module's doc) and says what it did.

    ``attachments`` is the job's attachments JSON (what :func:`submit_bundle_attachments`
    returns). Each root lands where a rule of ``path_mapping_rules`` maps it, else in its
    ``assetroot-…`` folder in ``session_dir`` (a root of a file system location must be
    mapped). ``on_conflict`` says what to do with a local file that differs from the
    manifest: ``overwrite`` it, ``skip`` it, or fail with ``ValidationError`` (``error``)
    before anything is written. ``s3`` sets credentials and the endpoint (default: boto3's
    chain). ``progress_callback`` gets a report of the download at most ten times a second;
    returning False cancels it (:class:`Cancelled`), with nothing of the root being downloaded
    placed.

    ``file_system`` (default: the attachments' ``fileSystem``) ``VIRTUAL`` mounts each root
    where it would have been copied instead (Linux, FUSE; see :mod:`jobattach.virtual`): its
    files listed at once and each fetched on its first read, through a cache of at most
    ``cache_limit`` bytes in ``session_dir``; what the task writes there stays local until
    :func:`sync_outputs` sends it. Where FUSE is not available it copies, with a warning, or
    with ``fallback=False`` raises :class:`MountError`. The mounts stay until
    :func:`unmount` (or the serving processes' end) takes them away.
    """
    check_choice("on_conflict", on_conflict, ConflictPolicy)
    manifests = _manifests_of(attachments)  # the attachments' shape checked first
    wanted = file_system or attachments.get("fileSystem") or "COPIED"
    check_choice("file_system", wanted, FileSystemMode)
    if wanted == "VIRTUAL" and (why := virtual.fuse_missing()) is not None:
        if not fallback:
            raise MountError(f"cannot mount the job's inputs: {why}")
        warnings.warn(f"copying the job's inputs instead of mounting them: {why}", stacklevel=2)
        wanted = "COPIED"
    policy = on_conflict
    t0 = time.perf_counter()
    bucket = Bucket(s3_location.bucket, s3 or S3Config())
    where = layout(s3_location.root_prefix)
    roots: dict[str, _Place] = {}
    by_root: dict[str, list[Manifest]] = {}
    for props in manifests:
        roots[props["rootPath"]] = _destination(props, session_dir, path_mapping_rules)
        if props.get("inputManifestPath"):
            data, _ = bucket.get_bytes(where.manifests_prefix + props["inputManifestPath"])
            # decoding validates every path
            by_root.setdefault(props["rootPath"], []).append(Manifest.decode(data))
    if wanted == "VIRTUAL":
        return _mount_roots(
            s3_location, bucket.config, roots, by_root, session_dir, cache_limit, t0
        )
    return _download_roots(bucket, where, roots, by_root, policy, progress_callback, t0)


def download_job_outputs(
    s3_location: S3Location,
    farm_id: str,
    queue_id: str,
    job_id: str,
    dest: str | os.PathLike[str] | None = None,
    *,
    step_id: str = "",
    task_id: str = "",
    path_mapping_rules: Sequence[PathMappingRule] = (),
    on_conflict: ConflictPolicy = "overwrite",
    s3: S3Config | None = None,
    progress_callback: ProgressCallback | None = None,
) -> DownloadResult:
    """Downloads the outputs of a job, or of one step, or one task of a step.

    Reads the output manifests the official downloader reads (each task's latest session
    action, every action of a step without tasks), merges those of a root oldest first, and
    downloads as ``sync_inputs`` does. Each root lands where a path mapping rule maps it, else
    in its own folder under ``dest``, else at the root's own path when that is absolute here.
    Progress and cancellation as for ``sync_inputs``.
    """
    check_choice("on_conflict", on_conflict, ConflictPolicy)
    policy = on_conflict
    t0 = time.perf_counter()
    bucket = Bucket(s3_location.bucket, s3 or S3Config())
    where = layout(s3_location.root_prefix)
    prefix = outputs_prefix(s3_location.root_prefix, farm_id, queue_id, job_id, step_id, task_id)
    keys = select_outputs([(key, modified) for key, _, modified in bucket.listing(prefix)])
    return download_output_manifests(
        bucket, where, keys, dest, path_mapping_rules, policy, progress_callback, t0
    )


def download_output_manifests(
    bucket: Bucket,
    where: Layout,
    keys: Sequence[str],
    dest: str | os.PathLike[str] | None,
    rules: Sequence[PathMappingRule],
    on_conflict: ConflictPolicy,
    progress: ProgressCallback | None,
    t0: float | None = None,
) -> DownloadResult:
    """Reads the output manifests ``keys`` (in the order to merge them) and downloads them,
    each root where :func:`download_job_outputs` puts it; ``t0`` is when the work began."""
    t0 = time.perf_counter() if t0 is None else t0
    roots: dict[str, _Place] = {}
    by_root: dict[str, list[Manifest]] = {}
    for key, (data, metadata) in zip(keys, bucket.get_many(keys)):
        root = manifest_root(metadata)
        if root is None:
            raise StorageError("an output manifest names no root in its metadata", path=key)
        if root not in roots:
            props = {"rootPath": root}
            roots[root] = _destination(props, dest, rules)
        by_root.setdefault(root, []).append(Manifest.decode(data))
    return _download_roots(bucket, where, roots, by_root, on_conflict, progress, t0)


@dataclass(frozen=True)
class _Place:
    """Where a root lands: ``base`` (a place the caller chose, its own links followed) or,
    with ``name``, the real folder ``name`` in it (never through a symlink)."""

    base: Path
    name: str | None = None

    @property
    def path(self) -> Path:
        return self.base / self.name if self.name else self.base

    def open(self) -> Directory:
        return open_root(self.base, self.name)


def _download_roots(
    bucket: Bucket,
    where: Layout,
    roots: dict[str, _Place],
    by_root: dict[str, list[Manifest]],
    on_conflict: ConflictPolicy,
    progress: ProgressCallback | None,
    t0: float,
) -> DownloadResult:
    """Downloads each root's merged manifest to its local directory; nothing is written before
    every root's plan stands. The component plans (what stands against the manifests, the
    conflicts, what to download once and where to put it); this reads and writes."""
    per_root, merged = _merged(roots, by_root)
    # Names, paths and times this system cannot hold are refused, every one named, before any
    # is read.
    check_holdable({dest.path: m.encode() for dest, m in merged.items()})
    with contextlib.ExitStack() as opened:
        folders = [opened.enter_context(dest.open()) for dest in merged]
        sides = [
            DownloadDestination(m.encode().decode("ascii"), _found(f, m), os.path.join(f.path, ""))
            for f, m in zip(folders, merged.values())
        ]
        plan = download_plan(sides, on_conflict)
        if isinstance(plan, HashFirst):  # same size and mtime: the hash decides
            sides = [
                dataclasses.replace(side, digests=hash_files(grant_of(f), rows) if rows else [])
                for side, f, rows in zip(sides, folders, plan.files)
            ]
            plan = download_plan(sides, on_conflict)
        assert isinstance(plan, DownloadPlan)  # every digest given
        counts = Reporter(progress).counts("downloading")
        tally = Tally(counts, plan.contents, plan.content_bytes)
        for folder, part in zip(folders, plan.destinations):
            _download(bucket, where, folder, part, tally)
    return DownloadResult(
        roots={root: str(dest.path) for root, dest in roots.items()},
        total_files=plan.files,
        total_bytes=plan.bytes,
        processed_files=plan.downloaded_files,
        processed_bytes=plan.downloaded_bytes,
        skipped_files=plan.unchanged_files,
        conflicts=plan.conflicts,
        total_time=time.perf_counter() - t0,
        manifests=per_root,
    )


def _merged(
    roots: dict[str, _Place], by_root: dict[str, list[Manifest]]
) -> tuple[dict[str, Manifest], dict[_Place, Manifest]]:
    """Each root's merged manifest, and what lands in each place: the roots mapped to one
    place merge there, later ones winning."""
    # One manifest stands as it is: a newer-format one (a mount serves its executables and
    # symlinks) is merged with nothing.
    per_root = {
        root: ms[0] if len(ms) == 1 else merge_manifests(ms) for root, ms in by_root.items()
    }
    by_dest: dict[_Place, list[Manifest]] = {}
    for root, m in per_root.items():
        by_dest.setdefault(roots[root], []).append(m)
    merged = {dest: ms[0] if len(ms) == 1 else merge_manifests(ms) for dest, ms in by_dest.items()}
    return per_root, merged


def _mount_roots(
    s3_location: S3Location,
    s3: S3Config,
    roots: dict[str, _Place],
    by_root: dict[str, list[Manifest]],
    session_dir: str | os.PathLike[str],
    cache_limit: int,
    t0: float,
) -> DownloadResult:
    """Mounts each place's merged manifest at the folder it would have been copied to, which
    must be empty (a mount would hide what is there)."""
    per_root, merged = _merged(roots, by_root)
    for dest in merged:
        with dest.open() as folder:
            if os.listdir(folder.fd):
                why = "the folder holds files already: a mount would hide them"
                raise MountError(f"cannot mount the job's inputs: {why}", path=str(dest.path))
    virtual.mount_roots(
        s3_location.bucket,
        s3_location.root_prefix,
        s3,
        [virtual.Root(dest.path, m.encode().decode("ascii")) for dest, m in merged.items()],
        session_dir,
        cache_limit=cache_limit,
    )
    files = sum(len(m) for m in merged.values())
    size = sum(m.total_size for m in merged.values())
    return DownloadResult(
        roots={root: str(dest.path) for root, dest in roots.items()},
        total_files=files,
        total_bytes=size,
        processed_files=0,
        processed_bytes=0,
        skipped_files=0,
        total_time=time.perf_counter() - t0,
        manifests=per_root,
        file_system="VIRTUAL",
    )


def _found(root: Directory, manifest: Manifest) -> list[Found]:
    """What stands at each of the manifest's paths, looked at through the destination's
    handle, folder by folder, never through a symlink."""
    found: list[Found] = []
    try:
        with Tree(root) as tree:
            for e in manifest.entries:
                st = tree.lstat(e.path)
                if st is not None:
                    kind = "f" if stat.S_ISREG(st.st_mode) else "o"
                    found.append((e.path, kind, st.st_size, st.st_mtime_ns // 1000))
    except OSError as err:
        why = f"cannot read the destination: {err.strerror}"
        raise FileAccessError(why, path=root.path) from err
    return found


def _destination(
    props: dict[str, Any],
    session_dir: str | os.PathLike[str] | None,
    rules: Sequence[PathMappingRule],
) -> _Place:
    """Where a root lands: by a rule, else in ``session_dir`` (unless it is a file system
    location, which must be mapped), else at its own path when that is absolute here."""
    root = props["rootPath"]
    mapped = map_path(rules, root) if rules else None
    if mapped is not None:
        return _Place(Path(mapped))
    if props.get("fileSystemLocationName"):
        raise ValidationError(
            f"no path mapping rule maps {root!r} (file system location"
            f" {props['fileSystemLocationName']!r})"
        )
    if session_dir is not None:
        return _Place(Path(session_dir), session_root_name(root))
    if not os.path.isabs(root):
        raise ValidationError(
            f"the job's root {root!r} is no absolute path here: map it by a rule or give a"
            " destination directory"
        )
    return _Place(Path(root))


def _download(
    bucket: Bucket, where: Layout, root: Directory, plan: DestinationPlan, tally: Tally
) -> None:
    """Downloads each distinct content once, in parallel, into a staging folder of this
    process; checks every size and, in one batched call to the component, every hash; then
    puts each file in place through the handles of its folders. A cancellation stops before
    anything of this root is placed."""
    if not plan.contents:
        return
    digests = [digest for digest, _ in plan.contents]
    sizes = dict(plan.contents)
    try:
        staging = Staging(root, avoid=[p.path.partition("/")[0] for p in plan.places])
    except OSError as err:
        why = f"cannot write the job's inputs: {err.strerror}"
        raise FileAccessError(why, path=root.path) from err
    with staging:
        transfers = [
            Transfer(where.data_key(d), os.path.join(staging.dir.path, d), sizes[d], sink=sink)
            for d, sink in ((d, staging.create(d)) for d in digests)
        ]
        bucket.download_files(
            transfers,
            done=lambda i: tally.add(sizes[digests[i]], i),
            cancelled=tally.cancelled,
            progress=tally.moved,
        )
        if tally.cancelled.is_set():
            raise Cancelled("the download was cancelled")
        for digest in digests:
            got = staging.size(digest)
            if got != sizes[digest]:
                key = where.data_key(digest)
                why = f"the object has {got} bytes where the manifest says {sizes[digest]}"
                raise StorageError(why, path=key)
        staged = [(d, sizes[d]) for d in digests]  # sizes just checked: lanes by size, no stat
        for digest, found in zip(digests, hash_files(staging.grant(), staged)):
            if found != digest:
                key = where.data_key(digest)
                why = f"the content of {key} does not match its hash (it hashes to {found})"
                raise StorageError(why, path=key)
        _place_all(staging, root, plan.places)


def _place_all(staging: Staging, root: Directory, places: list[Placement]) -> None:
    """Puts every file in place in the plan's order (path order: each folder opened once),
    a copy of the staged content or, at its last place, the staged file itself."""
    with Tree(root) as tree:
        for p in places:
            found = tree.parent(p.path, create=True)
            assert found is not None  # made when missing
            folder, leaf = found
            staging.place(p.digest, folder, leaf, p.mtime_us * 1000, copy=p.copy)


def _microseconds(seconds: float) -> int:
    # Whole seconds, then the fraction truncated to microseconds: the official worker's
    # arithmetic, so the same start time names the same folder.
    whole = int(seconds)
    return whole * 1_000_000 + int((seconds - whole) * 1_000_000)


@dataclass(frozen=True)
class SyncOutputsResult:
    """What :func:`sync_outputs` did, counted as :mod:`jobattach.progress` says."""

    #: Output files found (new, or touched since the inputs were written), and their bytes.
    total_files: int
    total_bytes: int
    #: Output files uploaded, and their bytes.
    processed_files: int
    processed_bytes: int
    #: Output files not sent: S3 holds their content already, or another output's is the same.
    skipped_files: int
    skipped_bytes: int
    #: The object keys of the output manifests written, one per root with outputs.
    manifest_keys: list[str]
    #: Seconds the upload took.
    total_time: float


@dataclass(frozen=True)
class SessionAction:
    """Which task's run produced the outputs: names the output manifest's place in S3."""

    #: The Deadline Cloud ids of the farm, queue, job and step, and of the session action.
    farm_id: str
    queue_id: str
    job_id: str
    step_id: str
    session_action_id: str
    #: When the session action started, seconds since the epoch.
    started: float
    #: Empty for a step-level action.
    task_id: str = ""


def sync_outputs(
    s3_location: S3Location,
    attachments: dict[str, Any],
    session_dir: str | os.PathLike[str],
    action: SessionAction,
    *,
    inputs: DownloadResult | None = None,
    path_mapping_rules: Sequence[PathMappingRule] = (),
    s3: S3Config | None = None,
) -> SyncOutputsResult:
    """Uploads a task's outputs and writes their manifests where the official worker does.

    ``attachments``, ``session_dir`` and ``path_mapping_rules`` are those the inputs were
    downloaded with; ``action`` names the session action whose outputs these are.

    The outputs are the files under each root's ``outputRelativeDirectories`` that are new,
    or whose mtime grew, since ``inputs`` wrote them or an earlier action of the session sent
    them: once sent, they become part of ``inputs.manifests`` (as the official worker records
    what it synced), so each task's manifest lists what that task wrote. Content goes first
    (what S3 has is skipped), manifests last.
    """
    t0 = time.perf_counter()
    bucket = Bucket(s3_location.bucket, s3 or S3Config())
    where = layout(s3_location.root_prefix)
    planned: list[tuple[dict[str, Any], Path, Manifest]] = []
    seen: dict[str, Manifest] = {}  # each root's baseline for the session's next action
    for props in _manifests_of(attachments):
        outputs = props.get("outputRelativeDirectories") or []
        place = _destination(props, session_dir, path_mapping_rules)
        local = place.path
        if place.name and local.is_symlink():  # the downloads never write through one either
            why = "a symlink stands at the root's folder: its outputs are not read through it"
            raise FileAccessError(why, path=str(local))
        if not outputs or not local.is_dir():
            continue
        windows = props.get("rootPathFormat") == "windows"
        include = output_patterns(outputs, windows=windows)
        current = create_manifest(local, include=include).manifest
        before = (
            inputs.manifests.get(props["rootPath"]) if inputs else None
        ) or Manifest.from_entries([])
        found = manifest_outputs(before, current)
        if len(found):
            planned.append((props, local, found))
            seen[props["rootPath"]] = merge_manifests([before, current])
    files = [
        Content(e.hash, local / e.path, e.size or 0, e.mtime)
        for _, local, m in planned
        for e in m.entries
        if e.hash is not None
    ]
    stats = upload_contents(bucket, where.data_key, files, under=where.data_prefix)
    keys = []
    for props, _, m in planned:
        target = engine.output_manifest(
            engine.OutputManifestRequest(
                root_prefix=s3_location.root_prefix,
                farm_id=action.farm_id,
                queue_id=action.queue_id,
                job_id=action.job_id,
                step_id=action.step_id,
                task_id=action.task_id,
                session_action_id=action.session_action_id,
                start_us=_microseconds(action.started),
                root=props["rootPath"],
                location=props.get("fileSystemLocationName"),
            )
        )
        bucket.put_bytes(
            target.key,
            m.encode(),
            metadata=target.metadata,
            content_type=target.content_type,
        )
        keys.append(target.key)
    if inputs is not None:
        inputs.manifests.update(seen)  # sent: the next action's outputs are what it writes
    return SyncOutputsResult(
        total_files=stats.files,
        total_bytes=stats.bytes,
        processed_files=stats.uploaded_files,
        processed_bytes=stats.uploaded_bytes,
        skipped_files=stats.skipped_files,
        skipped_bytes=stats.skipped_bytes,
        manifest_keys=keys,
        total_time=time.perf_counter() - t0,
    )
