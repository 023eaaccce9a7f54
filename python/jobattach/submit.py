"""Submitting a job's attachments: hash the inputs, upload what S3 lacks, write the manifests.

The component plans (grouping into asset roots, what each manifest holds, the S3 layout and
the ``attachments`` JSON); the host moves bytes with boto3 by path. Content goes up first and
manifests last, so an interrupted submission never leaves a manifest pointing at missing
content, and a rerun sends only what is still missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobattach_host import engine
from jobattach_host.choices import (
    FileSystemMode,
    LeftOutReason,
    LocationType,
    SkipReason,
    check_choice,
)
from jobattach_host.errors import Cancelled, FileAccessError, ValidationError
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.s3config import ClientOptions, S3Config
from jobattach_host.snapshot import Plan, plan
from jobattach_host.storage import Bucket
from jobattach_host.submit import AssetRootGroup, group_paths
from jobattach_host.sync import layout
from jobattach_host.upload import Content, Tally, upload_contents

from .asset_references import AssetReferences, expand_input_directories
from .manifest import Manifest
from .progress import ProgressCallback, ProgressReport, Reporter
from .snapshot import snapshot_of_plan


@dataclass(frozen=True)
class S3Location:
    """The queue's job-attachments bucket and root prefix."""

    #: The bucket's name.
    bucket: str
    #: The prefix every object of the queue's attachments is under (``Data/``, ``Manifests/``).
    root_prefix: str


@dataclass(frozen=True)
class ManifestLocation:
    """The farm and queue a job's input manifests are filed under."""

    farm_id: str
    queue_id: str


@dataclass(frozen=True)
class FileSystemLocation:
    """A storage profile's location: ``LOCAL`` paths are uploaded under the location's name,
    ``SHARED`` ones are not uploaded (workers see them already)."""

    #: The location's name, which names the manifests of the inputs under it.
    name: str
    #: Its absolute path on the submitting machine.
    path: str
    #: ``LOCAL`` (uploaded) or ``SHARED`` (not uploaded).
    type: LocationType = "LOCAL"

    def __post_init__(self) -> None:
        check_choice("a file system location's type", self.type, LocationType)


@dataclass(frozen=True)
class StorageProfile:
    """The submitting machine's storage profile: where its file system locations are."""

    file_system_locations: Sequence[FileSystemLocation] = ()


@dataclass(frozen=True)
class BundleSubmitOptions:
    """How :func:`submit_bundle_attachments` treats the inputs, and how its S3 client behaves."""

    #: Refuse inputs that cannot be uploaded, naming every one before anything is sent: those
    #: missing (else kept as references) and those the snapshot leaves out (else only listed in
    #: ``skipped_inputs``: special files, symlinks leading out of their root, names a manifest
    #: cannot carry).
    require_paths_exist: bool = False
    #: ``COPIED`` or ``VIRTUAL``, as the worker should present the inputs.
    file_system_mode: FileSystemMode = "COPIED"
    #: The S3 client's connections, timeouts and retries; with ``s3=``, see
    #: :func:`submit_bundle_attachments`.
    client_options: ClientOptions = field(default_factory=ClientOptions)

    def __post_init__(self) -> None:
        check_choice("file_system_mode", self.file_system_mode, FileSystemMode)


@dataclass(frozen=True)
class SummaryStatistics:
    """What a submission did, with the fields of the official package's ``SummaryStatistics``
    (and the hashing counts besides), as :mod:`jobattach.progress` says."""

    #: The input files found, and their bytes.
    total_files: int
    total_bytes: int
    #: Inputs uploaded, and their bytes.
    processed_files: int
    processed_bytes: int
    #: Inputs not sent: S3 holds their content already, or another input's is the same.
    skipped_files: int
    skipped_bytes: int
    #: Inputs whose digest was computed, and those whose digest the hash cache served.
    hashed_files: int
    cached_files: int
    #: Seconds the submission took.
    total_time: float

    @property
    def transfer_rate(self) -> float:
        """Bytes processed (uploaded) per second."""
        return self.processed_bytes / self.total_time if self.total_time else 0.0


@dataclass(frozen=True)
class BundleSubmitResult:
    """What :func:`submit_bundle_attachments` returns: the job's attachments and what it did."""

    #: The job's ``attachments``, as the Deadline Cloud CreateJob API takes it.
    attachments: dict[str, Any]
    statistics: SummaryStatistics
    #: Inputs that did not exist and became references.
    missing_inputs: list[str]
    #: Paths left out because they are under a SHARED location.
    skipped_shared: int
    #: Inputs the snapshot left out, by reason (symlinks out of the root, special files, ...).
    skipped_inputs: dict[SkipReason, list[str]]

    @property
    def attachments_json(self) -> str:
        """:attr:`attachments` as JSON text."""
        return json.dumps(self.attachments)

    @property
    def left_out(self) -> dict[str, LeftOutReason]:
        """Every input not uploaded, and why: ``missing`` (kept as a reference) or the reason
        of ``skipped_inputs`` (see :data:`LEFT_OUT`)."""
        out: dict[str, LeftOutReason] = dict.fromkeys(self.missing_inputs, "missing")
        for why, paths in self.skipped_inputs.items():
            out.update(dict.fromkeys(paths, why))
        return out


#: What each reason an input was left out means.
LEFT_OUT: dict[str, str] = {
    "missing": "does not exist (kept as a reference)",
    "special-file": "is not a regular file (a FIFO, socket or device)",
    "symlink-outside-root": "is a symlink leading out of its root",
    "symlink-to-directory": "is a symlink to a directory",
    "broken-symlink": "is a symlink leading nowhere",
    "unsupported-name": "has a name a manifest cannot carry",
    "empty-directory": "is an empty directory",
}


def _refuse_left_out(groups: Sequence[AssetRootGroup], plans: Sequence[Plan | None]) -> None:
    """Raises ``ValidationError`` naming every input the snapshot would leave out."""
    refused = [
        f"{os.path.join(g.root, path)} {LEFT_OUT.get(why, why)}"
        for g, p in zip(groups, plans)
        if p is not None
        for why, paths in sorted(p.skipped.items())
        for path in paths
    ]
    if refused:
        raise ValidationError(
            f"inputs cannot be uploaded (require_paths_exist): {'; '.join(refused)}"
        )


def submit_bundle_attachments(
    region: str | None,
    s3_location: S3Location,
    manifest_location: ManifestLocation,
    asset_references: AssetReferences,
    storage_profile: StorageProfile | None = None,
    options: BundleSubmitOptions | None = None,
    progress_callback: ProgressCallback | None = None,
    *,
    s3: S3Config | None = None,
    hash_cache: HashCache | bool = True,
    check_cache: S3CheckCache | bool = True,
) -> BundleSubmitResult:
    """Uploads a job's inputs and returns its ``attachments`` (see the module's doc).

    ``s3`` sets credentials and the endpoint (default: boto3's chain, ``region`` and
    ``options.client_options``). Beside ``s3``, ``region`` and ``options.client_options``
    fill what ``s3`` leaves unset (its region, its default client options); one that
    disagrees with what ``s3`` sets is a ``ValidationError``, never silently dropped.
    ``hash_cache`` and ``check_cache`` are the caches to use, True for the default ones, or
    False for none. ``progress_callback`` may return False to cancel: content already sent
    stays and is remembered, and no manifest is written.
    """
    t0 = time.perf_counter()
    opts = options or BundleSubmitOptions()
    config = _s3_config(region, opts.client_options, s3)
    locations = [
        (x.name, x.path, x.type)
        for x in (storage_profile or StorageProfile()).file_system_locations
    ]
    report = Reporter(progress_callback)
    if not report("scanning", 0, 0, 0, 0):
        raise Cancelled("the submission was cancelled while scanning")
    bucket = Bucket(s3_location.bucket, config)
    bucket.check()  # a wrong bucket or endpoint fails now, not after hours of hashing
    asset_references = expand_input_directories(
        asset_references, require_paths_exist=opts.require_paths_exist
    )
    grouping = group_paths(
        asset_references.input_filenames,
        asset_references.output_directories,
        asset_references.referenced_paths,
        locations=locations,
        require_paths_exist=opts.require_paths_exist,
    )
    plans: list[Plan | None] = []
    found = size = 0  # files and bytes found so far: the totals of the hashing phase
    for g in grouping.groups:
        p = plan(g.root, only=g.inputs) if g.inputs else None
        plans.append(p)
        if p:
            found, size = found + len(p.files), size + sum(f.size for f in p.files)
        if not report("scanning", found, 0, size, 0):
            raise Cancelled("the submission was cancelled while scanning")
    if opts.require_paths_exist:
        _refuse_left_out(grouping.groups, plans)
    tally = Tally(report.counts("hashing"), found, size)
    hashes = HashCache(lenient=True) if hash_cache is True else (hash_cache or None)
    manifests: list[Manifest | None] = []
    skipped: dict[SkipReason, list[str]] = {}
    hashed = cached = 0
    try:
        for g, p in zip(grouping.groups, plans):
            if p is None:
                manifests.append(None)
                continue
            try:
                snap = snapshot_of_plan(Path(g.root), p, cache=hashes or False, tally=tally)
            except FileAccessError as e:  # named below its root: a submission has several
                raise e.below(g.root) if e.path else e from None
            manifests.append(snap.manifest)
            hashed, cached = hashed + snap.hashed_files, cached + snap.cached_files
            for why, paths in snap.skipped.items():
                skipped.setdefault(why, []).extend(os.path.join(g.root, p) for p in paths)
    finally:
        if hash_cache is True and hashes:
            hashes.close()

    request = engine.Submission(
        root_prefix=s3_location.root_prefix,
        farm_id=manifest_location.farm_id,
        queue_id=manifest_location.queue_id,
        file_system=opts.file_system_mode,
        path_format="windows" if os.name == "nt" else "posix",
        roots=[
            engine.SubmittedRoot(
                root=g.root,
                location=g.location,
                outputs=g.outputs,
                manifest_hash=m.hash() if m else None,
                guid=uuid.uuid4().hex,
            )
            for g, m in zip(grouping.groups, manifests)
        ],
    )
    description = engine.describe(request)
    where = layout(s3_location.root_prefix)

    ctimes = [{f.path: f.ctime_ns for f in p.files} if p else {} for p in plans]
    files = [
        # not pathlib: 10 µs a file
        Content(e.hash, os.path.join(g.root, e.path), e.size or 0, e.mtime, ctime.get(e.path))
        for g, m, ctime in zip(grouping.groups, manifests, ctimes)
        if m is not None
        for e in m.entries
        if e.hash is not None
    ]
    checks = S3CheckCache(lenient=True) if check_cache is True else (check_cache or None)
    try:
        stats = upload_contents(
            bucket,
            where.data_key,
            files,
            under=where.data_prefix,
            check_cache=checks,
            progress=report.counts("uploading"),
        )
    finally:
        if check_cache is True and checks:
            checks.close()

    for m, target in zip(manifests, description.manifests):
        if m is not None and target is not None:
            bucket.put_bytes(
                target.key,
                m.encode(),
                metadata=target.metadata,
                content_type=target.content_type,
            )
    return BundleSubmitResult(
        attachments=description.attachments,
        statistics=SummaryStatistics(
            total_files=stats.files,
            total_bytes=stats.bytes,
            processed_files=stats.uploaded_files,
            processed_bytes=stats.uploaded_bytes,
            skipped_files=stats.skipped_files,
            skipped_bytes=stats.skipped_bytes,
            hashed_files=hashed,
            cached_files=cached,
            total_time=time.perf_counter() - t0,
        ),
        missing_inputs=grouping.missing,
        skipped_shared=grouping.skipped_shared,
        skipped_inputs=skipped,
    )


def _s3_config(region: str | None, client_options: ClientOptions, s3: S3Config | None) -> S3Config:
    """``s3`` with ``region`` and ``client_options`` filling what it leaves unset; refuses a
    value given twice that disagrees."""
    if s3 is None:
        return S3Config(region=region, options=client_options)
    if region is not None and s3.region not in (None, region):
        raise ValidationError(
            f"the region {region!r} disagrees with s3=S3Config(region={s3.region!r}):"
            " give it in one place"
        )
    default = ClientOptions()
    if client_options not in (default, s3.options) and s3.options != default:
        raise ValidationError(
            "options.client_options disagrees with s3=S3Config(options=...): give the client"
            " options in one place"
        )
    return dataclasses.replace(
        s3,
        region=s3.region or region,
        options=s3.options if s3.options != default else client_options,
    )


async def submit_bundle_attachments_async(
    region: str | None,
    s3_location: S3Location,
    manifest_location: ManifestLocation,
    asset_references: AssetReferences,
    storage_profile: StorageProfile | None = None,
    options: BundleSubmitOptions | None = None,
    progress_callback: ProgressCallback | None = None,
    *,
    s3: S3Config | None = None,
    hash_cache: HashCache | bool = True,
    check_cache: S3CheckCache | bool = True,
) -> BundleSubmitResult:
    """:func:`submit_bundle_attachments` to ``await``: it runs on a worker thread (the
    component's calls release the GIL), so the event loop stays free.

    Cancelling the ``await`` cancels the submission as a progress callback returning False
    would, and waits for it to stop: nothing is written after the cancellation is raised.
    """
    stop = threading.Event()

    def progress(report: ProgressReport) -> bool | None:
        if stop.is_set():
            return False
        return progress_callback(report) if progress_callback else True

    work = asyncio.ensure_future(
        asyncio.to_thread(
            functools.partial(
                submit_bundle_attachments,
                s3=s3,
                hash_cache=hash_cache,
                check_cache=check_cache,
            ),
            region,
            s3_location,
            manifest_location,
            asset_references,
            storage_profile,
            options,
            progress,
        )
    )
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(Exception):  # Cancelled, or whatever stopped it first
            await work
        raise
