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
from jobattach_host.destination import (
    Directory,
    GroupAccess,
    Staging,
    Tree,
    claim,
    free_space,
    grant_of,
    open_root,
    release,
)
from jobattach_host.engine import (
    Destination,
    DestinationPlan,
    DownloadDestination,
    DownloadPlan,
    Found,
    HashFirst,
    Placement,
    copy_name,
    download_plan,
    output_patterns,
)
from jobattach_host.errors import (
    Cancelled,
    DiskSpaceError,
    FileAccessError,
    StorageError,
    ValidationError,
)
from jobattach_host.s3config import S3Config
from jobattach_host.sizes import shown_size
from jobattach_host.snapshot import Patterns
from jobattach_host.storage import Bucket, Transfer
from jobattach_host.sync import (
    Layout,
    PathMappingRule,
    check_holdable,
    destination_of,
    layout,
    manifest_root,
    map_path,
    outputs_prefix,
    select_outputs,
    session_root_name,
)
from jobattach_host.upload import Content, Tally, upload_contents

from . import virtual
from .manifest import Manifest, manifest_outputs, merge_manifests, select_manifest
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
    #: Local files that differed from the manifest, by policy outcome: ``overwritten``,
    #: ``skipped`` (those left as they are, ``on_conflict="skip"``, are not in
    #: ``skipped_files``) or ``copied`` (kept, ``on_conflict="create-copy"``).
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    #: Under ``create-copy``: each kept file, and the copy beside it the download wrote
    #: (``name (1).ext``, or the next free number).
    copies: dict[str, str] = field(default_factory=dict)
    #: Seconds the download took.
    total_time: float = 0.0
    #: Each job root's merged manifest: for inputs, what sync_outputs compares outputs against.
    manifests: dict[str, Manifest] = field(default_factory=dict, repr=False)
    #: ``COPIED``, or ``VIRTUAL`` when the roots are mounted instead (nothing is downloaded
    #: then: a file is fetched on its first read); :func:`unmount` takes the mounts away.
    file_system: FileSystemMode = "COPIED"


@dataclass(frozen=True)
class JobUser:
    """The user a job runs as (POSIX), when it is not the one downloading: everything a
    download writes, files and every folder from the root down to them, is given to
    ``group`` with ``file_mode`` and ``dir_mode`` OR'd into their modes (the official
    worker's settings: group write). The downloading user must be root or in the group."""

    #: The group's name or id.
    group: str | int
    file_mode: int = 0o020
    dir_mode: int = 0o020

    def _access(self) -> GroupAccess:
        if os.name != "posix":
            raise ValidationError("job_user sets POSIX groups and modes; it has no Windows form")
        for name, mode in (("file_mode", self.file_mode), ("dir_mode", self.dir_mode)):
            if not 0 <= mode <= 0o777:
                raise ValidationError(f"job_user.{name} must be permission bits (0 to 0o777)")
        return GroupAccess(_gid(self.group), self.file_mode, self.dir_mode)


def _gid(group: str | int) -> int:
    import grp

    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():  # a group id, as the CLI takes it
            return int(group)
        raise ValidationError(f"no group named {group!r} on this machine") from None


def _manifests_of(attachments: object) -> list[dict[str, Any]]:
    """The job's ``attachments["manifests"]``, checked to be what CreateJob takes."""
    bad = ValidationError(
        "attachments must be an object whose manifests each have a rootPath string (and"
        " an inputManifestPath string, if any; the JSON that submit_bundle_attachments returns)"
    )
    if not isinstance(attachments, dict):
        raise bad
    manifests = attachments.get("manifests", [])
    if not isinstance(manifests, list) or not all(
        isinstance(m, dict)
        and isinstance(m.get("rootPath"), str)
        and isinstance(m.get("inputManifestPath", ""), str)
        for m in manifests
    ):
        raise bad
    return manifests


@dataclass(frozen=True)
class StoredManifest:
    """A manifest read from the bucket, validated: its key, and the root it describes."""

    key: str
    root: str
    manifest: Manifest


def _decoded(key: str, data: bytes) -> Manifest:
    try:
        return Manifest.decode(data)  # decoding validates every path
    except ValidationError as e:
        raise ValidationError(e.reason, kind=e.kind, path=key) from None


def input_manifests(bucket: Bucket, where: Layout, attachments: object) -> list[StoredManifest]:
    """The input manifests the job's ``attachments`` name, in their order."""
    manifests = _manifests_of(attachments)
    named = [
        (where.manifests_prefix + m["inputManifestPath"], m["rootPath"])
        for m in manifests
        if m.get("inputManifestPath")
    ]
    found = bucket.get_many([key for key, _ in named])
    return [
        StoredManifest(k, root, _decoded(k, data)) for (k, root), (data, _) in zip(named, found)
    ]


def output_manifests(
    bucket: Bucket,
    root_prefix: str,
    farm_id: str,
    queue_id: str,
    job_id: str,
    step_id: str = "",
    task_id: str = "",
) -> list[StoredManifest]:
    """The output manifests a download of a job's outputs (or a step's, or a task's) reads,
    as the official downloader picks them, in the order to merge them (oldest first)."""
    prefix = outputs_prefix(root_prefix, farm_id, queue_id, job_id, step_id, task_id)
    keys = select_outputs([(key, modified) for key, _, modified in bucket.listing(prefix)])
    return stored_outputs(bucket, keys)


def stored_outputs(bucket: Bucket, keys: Sequence[str]) -> list[StoredManifest]:
    """The output manifests at ``keys``, validated, each with the root its metadata names."""
    found: list[StoredManifest] = []
    for key, (data, metadata) in zip(keys, bucket.get_many(keys)):
        root = manifest_root(metadata)
        if root is None:
            raise StorageError("an output manifest names no root in its metadata", path=key)
        found.append(StoredManifest(key, root, _decoded(key, data)))
    return found


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
    include: Patterns = (),
    exclude: Patterns = (),
    job_user: JobUser | None = None,
) -> DownloadResult:
    """Downloads a job's inputs (see the module's doc) and says what it did.

    ``attachments`` is the job's attachments JSON (what :func:`submit_bundle_attachments`
    returns). Each root lands where a rule of ``path_mapping_rules`` maps it, else in its
    ``assetroot-…`` folder in ``session_dir`` (a root of a file system location must be
    mapped). ``on_conflict`` says what to do with a local file that differs from the
    manifest: ``overwrite`` it, ``skip`` it, keep it and write the manifest's content beside
    it as ``name (1).ext`` (``create-copy``, the official downloader's default), or fail with
    ``ValidationError`` (``error``) before anything is written. ``include`` and ``exclude``
    are globs of root-relative paths (the snapshot's rules: ``*.exr``, ``shots/**``): only
    the files ``include`` matches (none: all) and ``exclude`` does not are downloaded.
    ``job_user`` gives what the download writes to the group of the user the job runs as
    (:class:`JobUser`).
    ``s3`` sets credentials and the endpoint (default: boto3's chain). ``progress_callback``
    gets a report of the download at most ten times a second; returning False cancels it
    (:class:`Cancelled`), with nothing of the root being downloaded placed.

    ``file_system`` (default: the attachments' ``fileSystem``) ``VIRTUAL`` mounts each root
    where it would have been copied instead (Linux, FUSE; see :mod:`jobattach.virtual`): its
    files listed at once and each fetched on its first read, through a cache of at most
    ``cache_limit`` bytes in ``session_dir``; what the task writes there stays local until
    :func:`sync_outputs` sends it. Where FUSE is not available it copies, with a warning, or
    with ``fallback=False`` raises :class:`MountError`. The mounts stay until
    :func:`unmount` (or the serving processes' end) takes them away.
    """
    check_choice("on_conflict", on_conflict, ConflictPolicy)
    access = job_user._access() if job_user else None
    manifests = _manifests_of(attachments)  # the attachments' shape checked first
    wanted = file_system or attachments.get("fileSystem") or "COPIED"
    check_choice("file_system", wanted, FileSystemMode)
    why = virtual.fuse_missing() if wanted == "VIRTUAL" else None
    if wanted == "VIRTUAL" and why is None and access is not None:
        why = "a mount is served as the downloading user, and job_user asks for another's group"
    if why is not None:
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
    for stored in input_manifests(bucket, where, attachments):
        by_root.setdefault(stored.root, []).append(stored.manifest)
    if wanted == "VIRTUAL":
        return _mount_roots(
            s3_location,
            bucket.config,
            roots,
            by_root,
            (include, exclude),
            session_dir,
            cache_limit,
            t0,
        )
    return _download_roots(
        bucket, where, roots, by_root, (include, exclude), policy, progress_callback, t0, access
    )


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
    include: Patterns = (),
    exclude: Patterns = (),
    job_user: JobUser | None = None,
) -> DownloadResult:
    """Downloads the outputs of a job, or of one step, or one task of a step.

    Reads the output manifests the official downloader reads (each task's latest session
    action, every action of a step without tasks), merges those of a root oldest first, and
    downloads as ``sync_inputs`` does. Each root lands where a path mapping rule maps it, else
    in its own folder under ``dest``, else at the root's own path when that is absolute here.
    Conflicts, filters, progress and cancellation as for ``sync_inputs``.
    """
    check_choice("on_conflict", on_conflict, ConflictPolicy)
    access = job_user._access() if job_user else None
    policy = on_conflict
    t0 = time.perf_counter()
    bucket = Bucket(s3_location.bucket, s3 or S3Config())
    where = layout(s3_location.root_prefix)
    ids = (farm_id, queue_id, job_id, step_id, task_id)
    stored = output_manifests(bucket, s3_location.root_prefix, *ids)
    return download_output_manifests(
        bucket,
        where,
        stored,
        dest,
        path_mapping_rules,
        policy,
        progress_callback,
        t0,
        filters=(include, exclude),
        access=access,
    )


def download_output_manifests(
    bucket: Bucket,
    where: Layout,
    stored: Sequence[StoredManifest],
    dest: str | os.PathLike[str] | None,
    rules: Sequence[PathMappingRule],
    on_conflict: ConflictPolicy,
    progress: ProgressCallback | None,
    t0: float | None = None,
    *,
    filters: _Filters = ((), ()),
    access: GroupAccess | None = None,
) -> DownloadResult:
    """Downloads the output manifests ``stored`` (in the order to merge them), each root
    where :func:`download_job_outputs` puts it; ``t0`` is when the work began."""
    t0 = time.perf_counter() if t0 is None else t0
    roots: dict[str, _Place] = {}
    by_root: dict[str, list[Manifest]] = {}
    for s in stored:
        if s.root not in roots:
            roots[s.root] = _destination({"rootPath": s.root}, dest, rules)
        by_root.setdefault(s.root, []).append(s.manifest)
    return _download_roots(
        bucket, where, roots, by_root, filters, on_conflict, progress, t0, access
    )


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
    filters: _Filters,
    on_conflict: ConflictPolicy,
    progress: ProgressCallback | None,
    t0: float,
    access: GroupAccess | None = None,
) -> DownloadResult:
    """Downloads each root's merged manifest to its local directory; nothing is written before
    every root's plan stands. The component plans (what stands against the manifests, the
    conflicts, what to download once and where to put it); this reads and writes."""
    per_root, merged = _merged(roots, by_root, filters)
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
        _check_space(folders, plan.destinations)
        counts = Reporter(progress).counts("downloading")
        tally = Tally(counts, plan.contents, plan.content_bytes)
        copies: dict[str, str] = {}
        for folder, part in zip(folders, plan.destinations):
            for kept, copy in _download(bucket, where, folder, part, tally, access).items():
                copies[os.path.join(folder.path, kept)] = os.path.join(folder.path, copy)
    return DownloadResult(
        roots={root: str(dest.path) for root, dest in roots.items()},
        total_files=plan.files,
        total_bytes=plan.bytes,
        processed_files=plan.downloaded_files,
        processed_bytes=plan.downloaded_bytes,
        skipped_files=plan.unchanged_files,
        conflicts=plan.conflicts,
        copies=copies,
        total_time=time.perf_counter() - t0,
        manifests=per_root,
    )


#: A download's include and exclude globs.
_Filters = tuple[Patterns, Patterns]


def _merged(
    roots: dict[str, _Place], by_root: dict[str, list[Manifest]], filters: _Filters
) -> tuple[dict[str, Manifest], dict[_Place, Manifest]]:
    """Each root's merged manifest, and what lands in each place: the roots mapped to one
    place merge there, later ones winning, and only what the filters keep lands."""
    # One manifest stands as it is: a newer-format one (a mount serves its executables and
    # symlinks) is merged with nothing.
    per_root = {
        root: ms[0] if len(ms) == 1 else merge_manifests(ms) for root, ms in by_root.items()
    }
    by_dest: dict[_Place, list[Manifest]] = {}
    for root, m in per_root.items():
        by_dest.setdefault(roots[root], []).append(m)
    merged = {dest: ms[0] if len(ms) == 1 else merge_manifests(ms) for dest, ms in by_dest.items()}
    if any(filters):  # the roots' own manifests stay whole: they are what the job was given
        merged = {dest: select_manifest(m, *filters) for dest, m in merged.items()}
    return per_root, merged


def _mount_roots(
    s3_location: S3Location,
    s3: S3Config,
    roots: dict[str, _Place],
    by_root: dict[str, list[Manifest]],
    filters: _Filters,
    session_dir: str | os.PathLike[str],
    cache_limit: int,
    t0: float,
) -> DownloadResult:
    """Mounts each place's merged manifest at the folder it would have been copied to, which
    must be empty (a mount would hide what is there)."""
    per_root, merged = _merged(roots, by_root, filters)
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


def _check_space(folders: Sequence[Directory], parts: Sequence[DestinationPlan]) -> None:
    """Refuses a download that would not fit, before anything is fetched: on each file system,
    every file to be written (a file replaced is freed only once its new content is there)
    against the space free for this user."""
    needed: dict[int, int] = {}
    free: dict[int, tuple[int, str]] = {}
    for folder, part in zip(folders, parts):
        sizes = dict(part.contents)
        device, available = free_space(folder)
        needed[device] = needed.get(device, 0) + sum(sizes[p.digest] for p in part.places)
        free.setdefault(device, (available, folder.path))
    for device, need in needed.items():
        available, path = free[device]
        if need > available:
            why = (
                f"the download needs {shown_size(need)} ({need} bytes) on this file system,"
                f" which has {shown_size(available)} ({available} bytes) free: nothing was"
                " downloaded"
            )
            raise DiskSpaceError(why, needed=need, free=available, path=path)


def _download(
    bucket: Bucket,
    where: Layout,
    root: Directory,
    plan: DestinationPlan,
    tally: Tally,
    access: GroupAccess | None,
) -> dict[str, str]:
    """Downloads each distinct content once, in parallel, into a staging folder of this
    process; checks every size and, in one batched call to the component, every hash; then
    puts each file in place through the handles of its folders. A cancellation stops before
    anything of this root is placed. Returns where kept files' copies went (root-relative)."""
    if not plan.contents:
        return {}
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
        return _place_all(staging, root, plan.places, access)


def _place_all(
    staging: Staging, root: Directory, places: list[Placement], access: GroupAccess | None
) -> dict[str, str]:
    """Puts every file in place in the plan's order (path order: each folder opened once),
    a copy of the staged content or, at its last place, the staged file itself; with
    ``access``, each file and every folder from the root down to it is given to the group.
    Returns the name each kept file's copy took (``create-copy``), by the kept file's path."""
    taken = {p.path for p in places}
    copies: dict[str, str] = {}
    facts = destination_of(root.path) if any(p.beside for p in places) else None
    granted: set[str] = set()
    with Tree(root) as tree:
        for p in places:
            found = tree.parent(p.path, create=True)
            assert found is not None  # made when missing
            folder, leaf = found
            if access is not None:
                _grant_folders(tree, access, granted)
            if not p.beside:
                staging.place(p.digest, folder, leaf, p.mtime_us * 1000, copy=p.copy, access=access)
                continue
            assert facts is not None
            path, leaf, claimed = _claim_copy(facts, root, folder, p.path, taken)
            try:
                staging.place(p.digest, folder, leaf, p.mtime_us * 1000, copy=p.copy, access=access)
            except BaseException:
                release(folder, leaf, claimed)
                raise
            copies[p.path] = path
    return copies


def _grant_folders(tree: Tree, access: GroupAccess, granted: set[str]) -> None:
    """Gives the folders open along the tree's current path to the group, each once."""
    for folder in tree.folders():
        if folder.path not in granted:
            access.grant(folder.fd, access.dir_mode, folder.path)
            granted.add(folder.path)


#: Copy names tried for one kept file before the download gives up on it.
_COPY_NAMES = 10_000


def _claim_copy(
    facts: Destination, root: Directory, folder: Directory, path: str, taken: set[str]
) -> tuple[str, str, os.stat_result]:
    """The first free copy name of ``path`` (none of the download's own paths, nothing
    standing there), claimed in ``folder``: its path, leaf and what the claim made."""
    for n in range(1, _COPY_NAMES + 1):
        name = copy_name(facts, path, n)
        if name in taken:
            continue
        leaf = name.rpartition("/")[2]
        try:
            claimed = claim(folder, leaf)
        except OSError as err:
            why = f"cannot write a copy beside a file that differs: {err.strerror}"
            raise FileAccessError(why, path=os.path.join(root.path, name)) from err
        if claimed is not None:
            taken.add(name)
            return name, leaf, claimed
    why = f"the first {_COPY_NAMES} names for a copy beside it are all taken"
    raise FileAccessError(why, path=os.path.join(root.path, path))


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
