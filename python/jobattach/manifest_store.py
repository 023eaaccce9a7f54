"""The manifest store: putting a manifest file under a queue's ``Manifests/`` folder, and
bringing a job's manifests to local files.

:func:`upload_manifest` puts a manifest where ``deadline manifest upload`` does,
``{rootPrefix}/Manifests/{prefix}/{file name}``, with the content type and root metadata
of the manifests a submission writes (the component's rule). :func:`download_manifests`
reads a job's input manifests (those its attachments name) and its output manifests (those
:func:`download_job_outputs` reads), merges them by root (inputs first, then outputs oldest
first, later ones winning) and writes each root's manifest into a destination folder, named
by the component after the root. Every manifest read is decoded, so validated, by the
component before anything is written; files are written through the folder's handle, under a
temporary name first, and never through a symlink.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobattach_host import engine
from jobattach_host.choices import ConflictPolicy, ManifestKind, check_choice
from jobattach_host.destination import compare_file, open_root, replace_file
from jobattach_host.errors import FileAccessError, StorageError, ValidationError
from jobattach_host.s3config import S3Config
from jobattach_host.storage import Bucket
from jobattach_host.sync import layout, outputs_prefix

from .manifest import Manifest, merge_manifests
from .submit import S3Location
from .worker import StoredManifest, input_manifests, output_manifests


@dataclass(frozen=True)
class ManifestUpload:
    """Where :func:`upload_manifest` put a manifest."""

    bucket: str
    #: The object's key, and the part of it after ``Manifests/`` (what a job's attachments
    #: name as its ``inputManifestPath``).
    key: str
    manifest_path: str
    #: xxh3-128 of the bytes uploaded (an ``inputManifestHash``), and their number.
    hash: str
    size: int
    content_type: str
    metadata: dict[str, str]
    #: ``uploaded``, or ``unchanged`` when S3 held these bytes with this metadata already.
    outcome: str


def upload_manifest(
    manifest_file: str | os.PathLike[str],
    s3_location: S3Location,
    *,
    prefix: str = "",
    root: str | None = None,
    file_system_location: str | None = None,
    overwrite: bool = False,
    s3: S3Config | None = None,
) -> ManifestUpload:
    """Uploads the manifest in ``manifest_file`` to the manifest store.

    It goes to ``{root_prefix}/Manifests/{prefix}/{the file's name}``, validated and as the
    encoder writes it (the file's own bytes, for a manifest any tool wrote), with the metadata
    naming ``root`` (``asset-root``, which a download of outputs needs) and
    ``file_system_location`` (``file-system-location-name``; by default the file's path as
    given, as the official ``deadline manifest upload`` sets it). An object holding another
    manifest or other metadata at that key is replaced only with ``overwrite``: a job may rely
    on it (``StorageError`` otherwise).
    """
    path = Path(manifest_file)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FileAccessError(f"cannot read manifest: {e.strerror}", path=str(path)) from None
    try:
        manifest = Manifest.decode(data)
    except ValidationError as e:
        raise ValidationError(e.reason, kind=e.kind, path=str(path)) from None
    if file_system_location is None and os.fspath(manifest_file).isascii():
        # As `deadline manifest upload` fills it: the file's path as given (S3 metadata is
        # ASCII: a path that is not goes without it).
        file_system_location = os.fspath(manifest_file)
    target = engine.stored_manifest(
        s3_location.root_prefix, prefix, path.name, root, file_system_location
    )
    bucket = Bucket(s3_location.bucket, s3 or S3Config())
    body = manifest.encode()
    outcome = "uploaded"
    if bucket.metadata(target.key) is not None:
        held, metadata = bucket.get_bytes(target.key)
        if held == body and metadata == target.metadata:
            outcome = "unchanged"
        elif not overwrite:
            why = "S3 holds another manifest (or other metadata) at this key, which a job may"
            why += " rely on: replace it with overwrite (--overwrite)"
            raise StorageError(why, path=f"s3://{bucket.name}/{target.key}")
    if outcome == "uploaded":
        bucket.put_bytes(
            target.key, body, metadata=target.metadata, content_type=target.content_type
        )
    return ManifestUpload(
        bucket=bucket.name,
        key=target.key,
        manifest_path=target.key[len(layout(s3_location.root_prefix).manifests_prefix) :],
        hash=manifest.hash(),
        size=len(body),
        content_type=target.content_type,
        metadata=target.metadata,
        outcome=outcome,
    )


@dataclass(frozen=True)
class ManifestDownload:
    """One root's merged manifest, written by :func:`download_manifests`."""

    manifest_root: str
    local_manifest_path: str
    #: The manifest objects merged into it, in the order merged (later ones won).
    manifest_keys: list[str]
    #: ``written``; ``unchanged`` (the file held it already); ``overwritten`` or ``skipped``
    #: (a different file stood there, and the conflict policy said so).
    outcome: str


@dataclass(frozen=True)
class ManifestDownloadResult:
    """What :func:`download_manifests` wrote (``deadline manifest download``'s answer, with
    more to each entry)."""

    downloaded: list[ManifestDownload] = field(default_factory=list)


def download_manifests(
    s3_location: S3Location,
    farm_id: str,
    queue_id: str,
    job_id: str,
    dest: str | os.PathLike[str],
    *,
    attachments: dict[str, Any] | None = None,
    kind: ManifestKind = "all",
    step_id: str = "",
    task_id: str = "",
    on_conflict: ConflictPolicy = "overwrite",
    s3: S3Config | None = None,
) -> ManifestDownloadResult:
    """Writes a job's manifests into ``dest``, one merged manifest per root (see the
    module's doc).

    ``kind`` ``input`` reads the input manifests the job's ``attachments`` name (its
    attachments JSON, which the Deadline Cloud API's GetJob returns: this package does not
    call that API); ``output`` reads the output manifests of the job, or of ``step_id``, or of
    one task of it, as :func:`download_job_outputs` picks them; ``all`` both (the inputs only
    when ``attachments`` is given). Unlike ``deadline manifest download``, the inputs of a
    step do not include the outputs of the steps it depends on, which only the API knows.

    Each file is named after its root by the component; one that exists with other content
    is replaced (``overwrite``, and said so), left (``skip``), or refused before anything is
    written (``error``). Raises ``StorageError`` when no manifest is found, and
    ``ValidationError`` naming the object when one is no valid manifest.
    """
    check_choice("kind", kind, ManifestKind)
    check_choice("on_conflict", on_conflict, ConflictPolicy)
    if on_conflict == "create-copy":  # the file's name says which root it is: one per root
        raise ValidationError("on_conflict for manifests is 'overwrite', 'skip' or 'error'")
    if kind == "input" and attachments is None:
        raise ValidationError(
            "a job's input manifests are those its attachments name: give the job's"
            " attachments JSON (--attachments FILE)"
        )
    bucket = Bucket(s3_location.bucket, s3 or S3Config())
    ids = (farm_id, queue_id, job_id, step_id, task_id)
    stored: list[StoredManifest] = []
    if kind != "output" and attachments is not None:
        stored += input_manifests(bucket, layout(s3_location.root_prefix), attachments)
    if kind != "input":
        stored += output_manifests(bucket, s3_location.root_prefix, *ids)
    if not stored:
        raise StorageError(_nothing_found(s3_location, kind, ids))
    return _write_merged(stored, Path(dest), on_conflict)


def _nothing_found(s3_location: S3Location, kind: ManifestKind, ids: tuple[str, ...]) -> str:
    if kind == "input":
        return f"the attachments of job {ids[2]} name no input manifests"
    where = f"s3://{s3_location.bucket}/{outputs_prefix(s3_location.root_prefix, *ids)}"
    found = f"found no output manifests of job {ids[2]} under {where}"
    return found if kind == "output" else f"{found}, and no input manifests in its attachments"


def _file_name(root: str) -> str:
    try:
        root.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, from attachments JSON
        why = "the root is not Unicode text: its manifest has no name"
        raise ValidationError(why, path=root) from None
    return engine.downloaded_manifest_name(root)


def _write_merged(
    stored: list[StoredManifest], dest: Path, on_conflict: ConflictPolicy
) -> ManifestDownloadResult:
    """Merges ``stored`` by root and writes each root's manifest into ``dest``, every
    conflict decided before anything is written."""
    by_root: dict[str, list[StoredManifest]] = {}
    for s in stored:
        by_root.setdefault(s.root, []).append(s)
    names = {root: _file_name(root) for root in by_root}
    if len(set(names.values())) < len(names):  # only through a hash collision
        raise ValidationError(f"two roots' manifests would take one file name: {names}")
    with open_root(dest) as folder:
        plan: list[tuple[str, bytes, str]] = []
        refused: list[str] = []
        for root, found in by_root.items():
            ms = [s.manifest for s in found]
            data = (ms[0] if len(ms) == 1 else merge_manifests(ms)).encode()
            same = compare_file(folder, names[root], data)
            action: str = "written" if same is None else "unchanged" if same else on_conflict
            if action == "error":
                refused.append(os.path.join(folder.path, names[root]))
            plan.append((root, data, action))
        if refused:
            raise ValidationError(
                f"{len(refused)} files stand where the manifests go, with other content, so"
                f" nothing was written (on_conflict='error'): {', '.join(refused)}"
            )
        done: list[ManifestDownload] = []
        for root, data, action in plan:
            if action in ("written", "overwrite"):
                replace_file(folder, names[root], data)
            shown = {"overwrite": "overwritten", "skip": "skipped"}.get(action, action)
            done.append(
                ManifestDownload(
                    manifest_root=root,
                    local_manifest_path=os.path.join(folder.path, names[root]),
                    manifest_keys=[s.key for s in by_root[root]],
                    outcome=shown,
                )
            )
    return ManifestDownloadResult(done)
