"""Scrubbing a content store: the objects under ``Data/`` whose content does not hash to their
name.

An object named by a digest must hold exactly that content: every submission that finds it
there skips its upload, and every worker that downloads it checks it and fails. Yet the
official uploader hashes a file, then reads it again to send it, so a file rewritten between
the two is stored under its old digest. :func:`verify_content` finds such objects:

- An object whose listing names an XXHASH128 checksum is asked for it (a HEAD): a full-object
  XXHASH128 *is* the xxh3-128 of the content, so it is compared with the name without a
  download. This trusts the checksum: S3 verifies one sent with a PUT against the body before
  it stores it (and refuses the PUT otherwise), so on S3 it is the content's; an emulator may
  store what the client claimed unchecked (moto 5.2 does), so there it is only as good as the
  uploader. Our uploader sends it with each small object; the official one sends a CRC.
- Any other (a CRC checksum, none, or XXHASH128 per part of a multipart upload) is downloaded
  and hashed: by ``Bucket.download_files`` into a private staging folder in the temporary
  directory (``TMPDIR``), in batches of at most ``batch_bytes``, hashed there by the kernel
  (no byte becomes a Python object) and deleted before the next batch.

With ``fix``, each bad object is deleted only while it is the object that was checked (a
conditional delete on the ETag seen, ``Bucket.delete_version``), so content uploaded anew
under the key meanwhile stays; and the S3-check caches of this machine (ours, and the
official package's) forget the keys deleted, so the next submission sends their content
again. Objects under ``Data/`` whose names are no digest are reported, never deleted.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from jobattach_host import hash_files
from jobattach_host.destination import Staging, open_root
from jobattach_host.engine import content_digests
from jobattach_host.errors import Cancelled, StorageError
from jobattach_host.s3_check_cache import S3CheckCache, forget_official
from jobattach_host.s3config import S3Config
from jobattach_host.storage import Bucket, Listed, Transfer
from jobattach_host.sync import layout
from jobattach_host.upload import Tally

from .progress import ProgressCallback, Reporter
from .submit import S3Location

#: Bytes downloaded at most before they are hashed and deleted (an object larger than this
#: is downloaded alone).
BATCH_BYTES = 256 << 20
#: Objects downloaded at most at once.
BATCH_OBJECTS = 2000

#: How an object's content was told: by its stored checksum, or downloaded and hashed.
FoundBy = Literal["checksum", "download"]


@dataclass(frozen=True)
class BadObject:
    """An object whose content does not hash to its name."""

    key: str
    #: The digest its name says.
    expected: str
    #: The digest of its content.
    actual: str
    found_by: FoundBy
    #: Deleted by ``fix``; False without it, or when the object changed since it was checked.
    deleted: bool = False


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_content` found, and what it deleted."""

    #: Objects under ``Data/`` and their bytes.
    total_files: int
    total_bytes: int
    #: Objects named by a digest whose content was told, by their stored checksum or by a
    #: download; and the bytes downloaded.
    checked_files: int
    checksum_files: int
    downloaded_files: int
    downloaded_bytes: int
    #: The objects whose content does not hash to their name.
    bad: list[BadObject] = field(default_factory=list)
    #: Bad objects deleted (``fix``).
    deleted_files: int = 0
    #: Objects under ``Data/`` whose names are no digest: reported, never deleted.
    foreign: list[str] = field(default_factory=list)
    #: Objects gone or changed (another size) since the listing, and why: not told; a new
    #: run checks what is there then.
    unchecked: dict[str, str] = field(default_factory=dict)
    total_time: float = 0.0

    @property
    def remaining(self) -> list[BadObject]:
        """The bad objects still there (not deleted)."""
        return [b for b in self.bad if not b.deleted]

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON takes it, ``bad_files`` counted."""
        return {**asdict(self), "bad_files": len(self.bad)}


class _Found:
    """The verdicts so far."""

    def __init__(self) -> None:
        self.by_checksum = self.downloaded = self.downloaded_bytes = 0
        self.bad: list[tuple[BadObject, str]] = []  # and the ETag of the object checked
        self.unchecked: dict[str, str] = {}


def verify_content(
    s3_location: S3Location,
    *,
    fix: bool = False,
    s3: S3Config | None = None,
    check_cache: S3CheckCache | bool = True,
    official_cache: Path | None = None,
    progress_callback: ProgressCallback | None = None,
    batch_bytes: int = BATCH_BYTES,
) -> VerifyResult:
    """Tells, for every object under the root prefix's ``Data/``, whether its content hashes
    to its name (see the module's doc); with ``fix``, deletes those that do not and makes
    the S3-check caches forget them: ``check_cache`` (True: the default one; False: none)
    and the official package's at ``official_cache`` (default its own default location).

    Progress is reported in the ``verifying`` phase, by objects and bytes told; a callback
    returning False cancels (``Cancelled``) before the next batch or request starts.
    """
    t0 = time.perf_counter()
    bucket = Bucket(s3_location.bucket, s3 or S3Config())
    prefix = layout(s3_location.root_prefix).data_prefix
    listed = bucket.objects(prefix)
    digests = content_digests(s3_location.root_prefix, [o.key for o in listed])
    named = [(o, d) for o, d in zip(listed, digests) if d is not None]
    tally = Tally(
        Reporter(progress_callback).counts("verifying"), len(named), sum(o.size for o, _ in named)
    )
    found = _Found()
    to_download = _by_checksum(bucket, named, found, tally)
    _by_download(bucket, to_download, found, tally, batch_bytes)
    bad = [b for b, _ in found.bad]
    if fix and found.bad:
        bad = _delete(bucket, found.bad, check_cache, official_cache)
    return VerifyResult(
        total_files=len(listed),
        total_bytes=sum(o.size for o in listed),
        checked_files=found.by_checksum + found.downloaded,
        checksum_files=found.by_checksum,
        downloaded_files=found.downloaded,
        downloaded_bytes=found.downloaded_bytes,
        bad=sorted(bad, key=lambda b: b.key),
        deleted_files=sum(b.deleted for b in bad),
        foreign=sorted(o.key for o, d in zip(listed, digests) if d is None),
        unchecked=dict(sorted(found.unchecked.items())),
        total_time=time.perf_counter() - t0,
    )


def _by_checksum(
    bucket: Bucket, named: list[tuple[Listed, str]], found: _Found, tally: Tally
) -> list[tuple[Listed, str]]:
    """Tells the objects whose listing names an XXHASH128 checksum by that checksum; returns
    the others, to download (with the ETag a HEAD saw, where one was made)."""
    asked = [(o, d) for o, d in named if "XXHASH128" in o.checksums]
    rest = [(o, d) for o, d in named if "XXHASH128" not in o.checksums]
    _stop_if(tally)
    for (o, digest), stored in zip(asked, bucket.stored_many([o.key for o, _ in asked])):
        if stored is None:
            found.unchecked[o.key] = "gone since it was listed"
        elif stored.xxh128 is None:  # per part, or the listing was stale: downloaded
            rest.append((o._replace(etag=stored.etag), digest))
            continue
        else:
            found.by_checksum += 1
            if stored.xxh128 != digest:
                bad = BadObject(o.key, digest, stored.xxh128, "checksum")
                found.bad.append((bad, stored.etag))
        tally.add(o.size)
    return rest


def _by_download(
    bucket: Bucket,
    todo: list[tuple[Listed, str]],
    found: _Found,
    tally: Tally,
    batch_bytes: int,
) -> None:
    """Downloads and hashes ``todo``, a batch at a time."""
    start = 0
    for batch in _batches(todo, batch_bytes):
        _stop_if(tally)
        counted: set[int] = set()
        for (o, digest), actual in zip(batch, _hashed(bucket, batch, tally, start, counted)):
            if isinstance(actual, StorageError):
                found.unchecked[o.key] = str(actual)
                continue
            found.downloaded += 1
            found.downloaded_bytes += o.size
            if actual != digest:
                found.bad.append((BadObject(o.key, digest, actual, "download"), o.etag))
        for i, (o, _) in enumerate(batch):  # those that failed count as done too
            if start + i not in counted:
                tally.add(o.size, start + i)
        start += len(batch)
    _stop_if(tally)


def _batches(todo: list[tuple[Listed, str]], batch_bytes: int) -> list[list[tuple[Listed, str]]]:
    """``todo`` in runs of at most ``batch_bytes`` (or one larger object) and
    ``BATCH_OBJECTS``."""
    batches: list[list[tuple[Listed, str]]] = []
    size = 0
    for item in todo:
        if not batches or len(batches[-1]) >= BATCH_OBJECTS or size + item[0].size > batch_bytes:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += item[0].size
    return batches


def _hashed(
    bucket: Bucket,
    batch: Sequence[tuple[Listed, str]],
    tally: Tally,
    start: int,
    counted: set[int],
) -> list[str | StorageError]:
    """The digest of each object of ``batch``, downloaded to a staging folder of this
    process in the temporary directory and hashed there; the folder is gone on return. When
    the batch fails (an object gone or replaced since the listing), each is tried alone,
    and those that fail again give their error. ``start``: the batch's first place in
    ``tally``; ``counted`` receives the places it counted done."""
    lock = threading.Lock()

    def done(i: int) -> None:
        with lock:
            if start + i not in counted:
                counted.add(start + i)
                tally.add(batch[i][0].size, start + i)

    try:
        with open_root(tempfile.gettempdir()) as top, Staging(top) as staging:
            names = [str(i) for i in range(len(batch))]
            transfers = [
                Transfer(o.key, os.path.join(staging.dir.path, n), o.size, sink=staging.create(n))
                for n, (o, _) in zip(names, batch)
            ]
            bucket.download_files(
                transfers,
                done=done,
                cancelled=tally.cancelled,
                progress=lambda i, n: tally.moved(start + i, n),  # a retry's: counted once
            )
            _stop_if(tally)
            for n, (o, _) in zip(names, batch):
                if staging.size(n) != o.size:
                    raise StorageError("the object changed while it was read", path=o.key)
            staged = [(n, o.size) for n, (o, _) in zip(names, batch)]
            digests: list[str | StorageError] = [*hash_files(staging.grant(), staged)]
            return digests
    except StorageError as e:
        if len(batch) == 1:
            return [e]
        return [
            _hashed(bucket, [item], tally, start + i, counted)[0] for i, item in enumerate(batch)
        ]


def _delete(
    bucket: Bucket,
    bad: list[tuple[BadObject, str]],
    check_cache: S3CheckCache | bool,
    official_cache: Path | None,
) -> list[BadObject]:
    """Deletes each bad object while it is the one checked (its ETag); the caches forget
    those deleted. Returns the bad objects, marked."""
    out = [
        BadObject(b.key, b.expected, b.actual, b.found_by, bucket.delete_version(b.key, etag))
        for b, etag in bad
    ]
    gone = [b.key for b in out if b.deleted]
    if gone:
        cache = S3CheckCache(lenient=True) if check_cache is True else (check_cache or None)
        if cache is not None:
            try:
                cache.forget(bucket.name, gone)
            finally:
                if check_cache is True:
                    cache.close()
        forget_official(bucket.name, gone, official_cache)
    return out


def _stop_if(tally: Tally) -> None:
    if tally.cancelled.is_set():
        raise Cancelled("the verification was cancelled")
