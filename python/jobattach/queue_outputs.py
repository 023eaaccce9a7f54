"""Downloading the outputs of every job of a queue as they come, from S3 alone.

Each run lists the queue's ``Manifests/{farm}/{queue}/`` prefix, and the component says which
output manifests are new since the checkpoint file and in which batches (one job each) to
download them. Each job's outputs land where :func:`download_job_outputs` puts them, the
conflict policy applying to what stands there. After each batch the checkpoint is written
again, whole or not at all (a temporary name beside it, flushed, renamed over it): a run that
is killed loses at most the batch under way, and the next run starts from there. A checkpoint
that cannot be read, or that another queue's run wrote, stops the run rather than starting
afresh. Two runs at once with one checkpoint do the same work twice but lose none of it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobattach_host.choices import ConflictPolicy, check_choice
from jobattach_host.destination import Directory, open_root, read_file, replace_file
from jobattach_host.engine import NOTHING_DONE, OutputsDone
from jobattach_host.errors import FileAccessError, ValidationError
from jobattach_host.s3config import S3Config
from jobattach_host.snapshot import Patterns
from jobattach_host.storage import Bucket
from jobattach_host.sync import PathMappingRule, layout, queue_outputs, queue_outputs_prefix

from .progress import ProgressCallback
from .submit import S3Location
from .worker import DownloadResult, JobUser, download_output_manifests, stored_outputs

#: Seconds an output manifest's upload may take (and S3's clocks differ) at most: a manifest
#: not listed yet is last modified no earlier than the latest listed less this.
DEFAULT_LOOKBACK = 300.0

_MARK = "jobattach queue outputs checkpoint"
_VERSION = 1


@dataclass(frozen=True)
class QueueOutputsResult:
    """What :func:`download_queue_outputs` did, counted as :mod:`jobattach.progress` says."""

    #: Each job whose new outputs were downloaded, in the order they were, and what its
    #: download did.
    jobs: dict[str, DownloadResult]
    #: The output manifests read for each job, in the order they were merged.
    manifest_keys: dict[str, list[str]]
    #: Sums over the jobs' downloads.
    total_files: int
    total_bytes: int
    processed_files: int
    processed_bytes: int
    skipped_files: int
    #: Local files that differed from a manifest, by policy outcome, over all jobs.
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    #: The checkpoint file written.
    checkpoint: str = ""
    #: Seconds the run took.
    total_time: float = 0.0


def download_queue_outputs(
    s3_location: S3Location,
    farm_id: str,
    queue_id: str,
    checkpoint: str | os.PathLike[str],
    dest: str | os.PathLike[str] | None = None,
    *,
    path_mapping_rules: Sequence[PathMappingRule] = (),
    on_conflict: ConflictPolicy = "overwrite",
    s3: S3Config | None = None,
    progress_callback: ProgressCallback | None = None,
    lookback: float = DEFAULT_LOOKBACK,
    include: Patterns = (),
    exclude: Patterns = (),
    job_user: JobUser | None = None,
) -> QueueOutputsResult:
    """Downloads the output manifests of a queue's jobs written since ``checkpoint`` (a JSON
    file this function keeps; missing: everything), and records them there job by job.

    Every new manifest counts, each session action's (a task's retries too), merged oldest
    first so the latest write of a path wins. Each root lands where a rule of
    ``path_mapping_rules`` maps it, else in its own folder under ``dest``, else at the root's
    own path; ``on_conflict``, ``include``, ``exclude`` and ``job_user`` as for
    :func:`download_job_outputs`. ``lookback`` (seconds) is
    how long an upload may take at most: the checkpoint keeps the keys of manifests that new
    that, so none written meanwhile is missed.
    """
    check_choice("on_conflict", on_conflict, ConflictPolicy)
    access = job_user._access() if job_user else None
    if not lookback >= 0:
        raise ValidationError(f"the lookback must be 0 seconds or more, not {lookback}")
    t0 = time.perf_counter()
    bucket = Bucket(s3_location.bucket, s3 or S3Config())
    where = layout(s3_location.root_prefix)
    prefix = queue_outputs_prefix(s3_location.root_prefix, farm_id, queue_id)
    with _Checkpoint(checkpoint, bucket.name, prefix) as book:
        since = book.load()
        listing = [(key, modified) for key, _, modified in bucket.listing(prefix)]
        plan = queue_outputs(prefix, listing, since, round(lookback * 1_000_000))
        jobs: dict[str, DownloadResult] = {}
        done = dict(since.done)
        for batch in plan.batches:
            stored = stored_outputs(bucket, [o.key for o in batch.outputs])
            jobs[batch.job_id] = download_output_manifests(
                bucket,
                where,
                stored,
                dest,
                path_mapping_rules,
                on_conflict,
                progress_callback,
                filters=(include, exclude),
                access=access,
            )
            done.update((o.key, o.last_modified_us) for o in batch.outputs)
            mark = batch.complete_before_us
            done = {key: modified for key, modified in done.items() if modified >= mark}
            book.save(OutputsDone(mark, done))
        book.save(plan.after)
    conflicts: dict[str, list[str]] = {}
    for result in jobs.values():
        for outcome, paths in result.conflicts.items():
            conflicts.setdefault(outcome, []).extend(paths)
    return QueueOutputsResult(
        jobs=jobs,
        manifest_keys={b.job_id: [o.key for o in b.outputs] for b in plan.batches},
        total_files=sum(r.total_files for r in jobs.values()),
        total_bytes=sum(r.total_bytes for r in jobs.values()),
        processed_files=sum(r.processed_files for r in jobs.values()),
        processed_bytes=sum(r.processed_bytes for r in jobs.values()),
        skipped_files=sum(r.skipped_files for r in jobs.values()),
        conflicts=conflicts,
        checkpoint=str(checkpoint),
        total_time=time.perf_counter() - t0,
    )


class _Checkpoint:
    """The checkpoint file of one queue's downloads, read and replaced through a handle of
    its folder (the file itself is never followed if it is a symlink)."""

    def __init__(self, path: str | os.PathLike[str], bucket: str, prefix: str) -> None:
        self.path = os.fspath(path)
        self.identity = {"bucket": bucket, "prefix": prefix}
        folder, leaf = os.path.split(os.path.abspath(self.path))
        self.leaf = leaf
        self.folder: Directory = open_root(folder)

    def __enter__(self) -> _Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.folder.close()

    def load(self) -> OutputsDone:
        try:
            data = read_file(self.folder, self.leaf)
        except OSError as e:
            why = f"cannot read the checkpoint: {e.strerror}"
            raise FileAccessError(why, path=self.path) from e
        if data is None:
            return NOTHING_DONE
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise self._bad(f"not JSON ({e})") from e
        return self._done(doc)

    def _done(self, doc: Any) -> OutputsDone:
        if not isinstance(doc, dict) or doc.get("checkpoint") != _MARK:
            raise self._bad("not a jobattach queue outputs checkpoint")
        version = doc.get("version")
        if version != _VERSION:
            raise self._bad(f"version {version!r}, where this jobattach reads {_VERSION}")
        for name, value in self.identity.items():
            if doc.get(name) != value:
                raise ValidationError(
                    f"the checkpoint is of {name} {doc.get(name)!r}, not {value!r}: give each"
                    " queue its own checkpoint",
                    path=self.path,
                )
        mark, done = doc.get("completeBeforeUs"), doc.get("done")
        if mark is not None and (type(mark) is not int or mark < NOTHING_DONE.complete_before_us):
            raise self._bad("completeBeforeUs is no microsecond count")
        if not isinstance(done, dict) or not all(type(v) is int for v in done.values()):
            raise self._bad("done is no object of keys to microsecond counts")
        return OutputsDone(NOTHING_DONE.complete_before_us if mark is None else mark, done)

    def _bad(self, why: str) -> ValidationError:
        return ValidationError(
            f"the checkpoint cannot be read: {why}; move it away to download the queue's"
            " outputs again from the start",
            path=self.path,
        )

    def save(self, state: OutputsDone) -> None:
        mark = state.complete_before_us
        doc = {
            "checkpoint": _MARK,
            "version": _VERSION,
            **self.identity,
            "completeBeforeUs": None if mark == NOTHING_DONE.complete_before_us else mark,
            "done": dict(sorted(state.done.items())),
        }
        try:
            replace_file(self.folder, self.leaf, json.dumps(doc, indent=1).encode() + b"\n")
        except OSError as e:
            why = f"cannot write the checkpoint: {e.strerror}"
            raise FileAccessError(why, path=self.path) from e
