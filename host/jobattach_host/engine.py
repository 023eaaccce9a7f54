"""The engine's contract in Python: the only module that calls the component.

Each function here is one export of ``wit/engine.wit``, with Python types for its records,
enums and options; bulk data (listings, plans, manifests) crosses as the JSON the WIT and
``wit/schemas/`` describe. Everything else in ``host/`` and ``python/`` calls these.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Union

from wasmtime import component as wc

from .choices import ConflictPolicy, PathFormat, check_choice
from .sandbox import Instance, instance_for


def _record(**fields: object) -> wc.Record:
    """A WIT record: its fields are the kebab-case spellings of ``fields``' names."""
    record = wc.Record()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record


def bulk(value: object) -> str:
    """``value`` as the JSON the contract's bulk data is: ASCII, so that a name that is not
    UTF-8 (Python's lone surrogate U+DC00+B for the byte B) travels as its ``\\udcXX``
    escape, the one rule of ``wit/engine.wit``."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _metadata(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    return {str(k): str(v) for k, v in pairs}


# --- info -------------------------------------------------------------------------------


def version(**instance: Any) -> str:
    """The component's own version, as it reports it."""
    return str(instance_for(**instance).call("info", "version"))


# --- hashing ----------------------------------------------------------------------------

#: One digest, or the digests of each chunk of a file.
Digest = Union[str, list[str]]
#: A path; ``(path, size)`` with the size from a listing; or ``(path, size, chunk)``.
Item = Union[str, tuple[str, int], tuple[str, int, int]]


def check_items(s: Instance, items: Sequence[Item]) -> None:
    """Checks ``items`` by the rules :func:`hash_items` applies, reading nothing."""
    s.call("hashing", "check-items", bulk(items))


def hash_items(s: Instance, items: Sequence[Item]) -> list[Digest]:
    """Digests of ``items`` below the first root ``s`` grants, in their order."""
    return list(json.loads(s.call("hashing", "hash-files", s.roots[0], bulk(items))))


# --- manifest ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Canonical:
    """A manifest in canonical form (``manifest.canonical``)."""

    format: str
    #: The exact bytes the reference encoder writes, as ASCII text.
    encoded: str
    hash: str
    #: The newer format's entries with full paths
    #: (``wit/schemas/manifest-entries.schema.json``); empty for v2023-03-03, whose
    #: ``encoded`` lists them.
    entries: str


def _canonical(c: Any) -> Canonical:
    return Canonical(str(c.format), str(c.encoded), str(c.hash), str(c.entries))


def canonicalize(text: str) -> Canonical:
    return _canonical(instance_for().call("manifest", "canonicalize", text))


def build_manifest(format: str, entries: str) -> Canonical:
    """A manifest of ``format`` from entries in ``Canonical.entries``' JSON."""
    return _canonical(instance_for().call("manifest", "build", format, entries))


def convert_manifest(encoded: str, format: str) -> Canonical:
    return _canonical(instance_for().call("manifest", "convert", encoded, format))


def diff_manifests(old: str, new: str) -> dict[str, Any]:
    """``manifest.diff`` of two encodings (``wit/schemas/manifest-diff.schema.json``)."""
    return dict(json.loads(instance_for().call("manifest", "diff", old, new)))


def merge_manifests(encoded: Sequence[str]) -> Canonical:
    return _canonical(instance_for().call("manifest", "merge", list(encoded)))


def select_manifest(encoded: str, include: Sequence[str], exclude: Sequence[str]) -> Canonical:
    call = instance_for().call
    return _canonical(call("manifest", "select", encoded, list(include), list(exclude)))


def manifest_outputs(inputs: str, current: str) -> Canonical:
    return _canonical(instance_for().call("manifest", "outputs", inputs, current))


# --- snapshot ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotOptions:
    """What a snapshot of a root keeps (``snapshot.options``)."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    #: The manifest format planned for; None for v2023-03-03.
    format: str | None = None
    #: The root's absolute paths on the host, which absolute symlink targets begin with.
    host_roots: Sequence[str] = ()

    def _wit(self) -> wc.Record:
        return _record(
            include=list(self.include),
            exclude=list(self.exclude),
            format=self.format,
            host_roots=list(self.host_roots),
        )


def plan_snapshot(
    s: Instance, options: SnapshotOptions, listing: str | None = None
) -> dict[str, Any]:
    """The snapshot plan of the first root ``s`` grants (``wit/schemas/snapshot-plan.schema.json``):
    of the whole root, or of ``listing`` (``wit/schemas/listing.schema.json``) when given."""
    if listing is None:
        text = s.call("snapshot", "plan", s.roots[0], options._wit())
    else:
        text = s.call("snapshot", "plan-listed", s.roots[0], listing, options._wit())
    return dict(json.loads(text))


def diff_tree(
    s: Instance, manifest: str, options: SnapshotOptions, by_hash: bool
) -> dict[str, Any]:
    """What changed in the first root ``s`` grants since ``manifest``, as
    :func:`diff_manifests` gives it."""
    text = s.call("snapshot", "diff", s.roots[0], manifest, options._wit(), by_hash)
    return dict(json.loads(text))


# --- submit -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRequest:
    """A job's paths to group into asset roots (``submit.group-request``)."""

    #: ``posix`` or ``windows``.
    style: str
    #: ``(absolute path, "file"|"directory"|"missing"|"too-long")``.
    inputs: Sequence[tuple[str, str]]
    outputs: Sequence[str]
    references: Sequence[str]
    #: ``(name, path, "LOCAL"|"SHARED")``.
    locations: Sequence[tuple[str, str, str]]
    require_paths_exist: bool


def group_paths(request: GroupRequest) -> str:
    """The JSON of a job's paths (``wit/schemas/group-paths.schema.json``)."""
    paths = {
        "inputs": [list(i) for i in request.inputs],
        "outputs": list(request.outputs),
        "references": list(request.references),
    }
    return bulk(paths)


def group(request: GroupRequest) -> dict[str, Any]:
    """``submit.group``: the groups (``wit/schemas/groups.schema.json``)."""
    wit = _record(
        style=request.style,
        paths=group_paths(request),
        locations=[
            _record(name=name, path=path, kind=kind.lower())
            for name, path, kind in request.locations
        ],
        require_paths_exist=request.require_paths_exist,
    )
    return dict(json.loads(instance_for().call("submit", "group", wit)))


@dataclass(frozen=True)
class SubmittedRoot:
    """One asset root of a submission (``submit.submitted-root``)."""

    root: str
    location: str | None
    outputs: Sequence[str]
    manifest_hash: str | None
    guid: str


@dataclass(frozen=True)
class Submission:
    """What ``submit.describe`` takes."""

    root_prefix: str
    farm_id: str
    queue_id: str
    #: ``COPIED`` or ``VIRTUAL``.
    file_system: str
    #: ``posix`` or ``windows``.
    path_format: str
    roots: Sequence[SubmittedRoot]


@dataclass(frozen=True)
class ManifestObject:
    """Where a manifest object goes, the content type to store it with, and its user
    metadata."""

    key: str
    content_type: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class Description:
    #: One per root, None for a root without a manifest.
    manifests: list[ManifestObject | None]
    #: The job's ``attachments``, as the Deadline Cloud API takes it.
    attachments: dict[str, Any]


def describe(request: Submission) -> Description:
    wit = _record(
        root_prefix=request.root_prefix,
        farm_id=request.farm_id,
        queue_id=request.queue_id,
        file_system=request.file_system.lower(),
        path_format=request.path_format,
        roots=[
            _record(
                root=r.root,
                location=r.location,
                outputs=list(r.outputs),
                manifest_hash=r.manifest_hash,
                guid=r.guid,
            )
            for r in request.roots
        ],
    )
    out = instance_for().call("submit", "describe", wit)
    manifests = [None if m is None else _object(m) for m in out.manifests]
    return Description(manifests, json.loads(out.attachments))


def _object(o: Any) -> ManifestObject:
    return ManifestObject(str(o.key), str(getattr(o, "content-type")), _metadata(o.metadata))


# --- sync -------------------------------------------------------------------------------


def session_root_name(root_path: str) -> str:
    """The folder the official worker gives ``root_path`` in a session directory."""
    return str(instance_for().call("sync", "session-root", root_path))


@dataclass(frozen=True)
class Layout:
    """Where objects are under a queue's root prefix (the component's rule)."""

    data_prefix: str
    data_suffix: str
    manifests_prefix: str

    def data_key(self, digest: str) -> str:
        return f"{self.data_prefix}{digest}{self.data_suffix}"


def layout(root_prefix: str) -> Layout:
    out = instance_for().call("sync", "layout", root_prefix)
    return Layout(
        str(getattr(out, "data-prefix")),
        str(getattr(out, "data-suffix")),
        str(getattr(out, "manifests-prefix")),
    )


def content_digests(root_prefix: str, keys: Sequence[str]) -> list[str | None]:
    """The digest each key names as a content object under ``root_prefix`` (the suffixed
    name, or the older bare one), or None for a foreign key, in one call."""
    out = instance_for().call("sync", "content-digests", root_prefix, list(keys))
    return [None if d is None else str(d) for d in out]


@dataclass(frozen=True)
class OutputManifestRequest:
    """One root's output manifest of a session action (``sync.output-manifest-request``)."""

    root_prefix: str
    farm_id: str
    queue_id: str
    job_id: str
    step_id: str
    #: Empty for a step-level action.
    task_id: str
    session_action_id: str
    #: The action's start, microseconds since the epoch.
    start_us: int
    root: str
    location: str | None


def output_manifest(request: OutputManifestRequest) -> ManifestObject:
    wit = _record(
        root_prefix=request.root_prefix,
        farm_id=request.farm_id,
        queue_id=request.queue_id,
        job_id=request.job_id,
        step_id=request.step_id,
        task_id=request.task_id,
        session_action_id=request.session_action_id,
        start_us=request.start_us,
        root=request.root,
        location=request.location,
    )
    return _object(instance_for().call("sync", "output-manifest", wit))


def outputs_prefix(
    root_prefix: str, farm_id: str, queue_id: str, job_id: str, step_id: str = "", task_id: str = ""
) -> str:
    """Where the output manifests of a job (or of one step, or one task of a step) are."""
    request = _record(
        root_prefix=root_prefix,
        farm_id=farm_id,
        queue_id=queue_id,
        job_id=job_id,
        step_id=step_id or None,
        task_id=task_id or None,
    )
    return str(instance_for().call("sync", "outputs-prefix", request))


def select_outputs(listing: Sequence[tuple[str, int]]) -> list[str]:
    """The output manifests to read from a listing of ``(key, last modified in µs)``, oldest
    first: each task's latest session action's, and all of steps without tasks."""
    objects = [_record(key=key, last_modified_us=modified) for key, modified in listing]
    return [str(key) for key in instance_for().call("sync", "select-outputs", objects)]


def queue_outputs_prefix(root_prefix: str, farm_id: str, queue_id: str) -> str:
    """Where the output manifests of every job of a queue are listed."""
    return str(instance_for().call("sync", "queue-outputs-prefix", root_prefix, farm_id, queue_id))


@dataclass(frozen=True)
class QueueOutput:
    """An output manifest of a queue (``sync.queue-output``)."""

    key: str
    last_modified_us: int
    job_id: str
    step_id: str
    #: Empty for a step's session action.
    task_id: str
    session_action_id: str


@dataclass(frozen=True)
class OutputsDone:
    """What earlier downloads of a queue's outputs did (``sync.queue-outputs-done``): every
    output manifest last modified before ``complete_before_us``, and ``done`` (key to last
    modification) at or after it."""

    complete_before_us: int
    done: dict[str, int]


#: Nothing done yet: the least ``s64``.
NOTHING_DONE = OutputsDone(-(2**63), {})


@dataclass(frozen=True)
class OutputsBatch:
    """One job's new output manifests, oldest first, and the watermark once it and the
    batches before it are downloaded."""

    job_id: str
    outputs: list[QueueOutput]
    complete_before_us: int


@dataclass(frozen=True)
class OutputsPlan:
    """The batches to download, one job each, and what is done once all are."""

    batches: list[OutputsBatch]
    after: OutputsDone


def queue_outputs(
    prefix: str, listing: Sequence[tuple[str, int]], since: OutputsDone, lookback_us: int
) -> OutputsPlan:
    """The output manifests of a listing of ``prefix`` (``(key, last modified in µs)``) new
    since ``since``, in batches (``sync.queue-outputs``)."""

    def objects(pairs: Iterable[tuple[str, int]]) -> list[wc.Record]:
        return [_record(key=key, last_modified_us=modified) for key, modified in pairs]

    request = _record(
        prefix=prefix,
        listing=objects(listing),
        since=_record(
            complete_before_us=since.complete_before_us, done=objects(since.done.items())
        ),
        lookback_us=lookback_us,
    )
    plan = instance_for().call("sync", "queue-outputs", request)

    def output(o: Any) -> QueueOutput:
        return QueueOutput(
            str(o.key),
            int(getattr(o, "last-modified-us")),
            str(getattr(o, "job-id")),
            str(getattr(o, "step-id")),
            str(getattr(o, "task-id")),
            str(getattr(o, "session-action-id")),
        )

    after = plan.after
    return OutputsPlan(
        [
            OutputsBatch(
                str(getattr(b, "job-id")),
                [output(o) for o in b.outputs],
                int(getattr(b, "complete-before-us")),
            )
            for b in plan.batches
        ],
        OutputsDone(
            int(getattr(after, "complete-before-us")),
            {str(o.key): int(getattr(o, "last-modified-us")) for o in after.done},
        ),
    )


def manifest_root(metadata: Mapping[str, str]) -> str | None:
    """The root a manifest object names in its user metadata."""
    root = instance_for().call("sync", "manifest-root", list(metadata.items()))
    return None if root is None else str(root)


def stored_manifest(
    root_prefix: str, prefix: str, name: str, root: str | None, location: str | None
) -> ManifestObject:
    """Where a manifest file ``name`` goes in the manifest store (below ``Manifests/`` and
    ``prefix``), and the metadata naming ``root`` and ``location``."""
    wit = _record(root_prefix=root_prefix, prefix=prefix, name=name, root=root, location=location)
    return _object(instance_for().call("sync", "stored-manifest", wit))


def downloaded_manifest_name(root: str) -> str:
    """The file name a download of a job's manifests gives ``root``'s merged manifest."""
    return str(instance_for().call("sync", "downloaded-manifest-name", root))


#: A file of a mirror's listing: path, size, mtime in µs.
MirrorFile = tuple[str, int, int]


def mirror_listing(files: Sequence[MirrorFile]) -> str:
    """The JSON of a mirror's listing (``wit/schemas/mirror-listing.schema.json``)."""
    return bulk([list(f) for f in files])


@dataclass(frozen=True)
class MirrorRequest:
    """``sync.mirror-request``: two listings and what to do."""

    source: Sequence[MirrorFile]
    dest: Sequence[MirrorFile]
    delete: bool = False
    by_hash: bool = False
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    #: A dry run: a plan that deletes files and keeps none is given, not refused.
    dry_run: bool = False
    #: The two sides as people know them, for that refusal's message.
    source_name: str = "the source"
    dest_name: str = "the destination"


@dataclass(frozen=True)
class MirrorPlan:
    copy: list[str]
    unchanged: list[str]
    #: Files of the same size on both sides, to compare by digest (with ``by_hash``).
    compare: list[str]
    delete: list[str]
    unsupported: list[str]
    excluded: int


def plan_mirror(request: MirrorRequest) -> MirrorPlan:
    wit = _record(
        source=mirror_listing(request.source),
        dest=mirror_listing(request.dest),
        delete=request.delete,
        by_hash=request.by_hash,
        include=list(request.include),
        exclude=list(request.exclude),
        dry_run=request.dry_run,
        source_name=_lossy(request.source_name),
        dest_name=_lossy(request.dest_name),
    )
    return MirrorPlan(**json.loads(instance_for().call("sync", "plan-mirror", wit)))


@dataclass(frozen=True)
class Destination:
    """The facts of the file system a download writes to, which the component's rules take
    (``sync.destination``): the root's length as the system counts it (bytes, UTF-16
    units on Windows), ``PATH_MAX`` and ``NAME_MAX`` as ``pathconf`` answers them (None where
    it does not; -1 for no limit), and whether a Windows root has the long-path prefix."""

    platform: str
    root_length: int = 0
    path_max: int | None = None
    name_max: int | None = None
    long_paths: bool = False


def entry_rows(rows: Sequence[tuple[str, int | None]]) -> str:
    """The JSON of entries to check (``wit/schemas/entry-rows.schema.json``): path, mtime in
    µs or None."""
    return bulk([list(r) for r in rows])


def refused_entries(
    destination: Destination, entries: str, *, lengths_only: bool = False
) -> list[tuple[str, str]]:
    """``(path, reason)`` of each of ``entries`` (a manifest's encoding, or
    ``wit/schemas/entry-rows.schema.json``) that ``destination`` cannot hold."""
    facts = _file_system(destination, lengths_only=lengths_only)
    found = instance_for().call("sync", "refused-entries", facts, entries)
    return [(str(path), str(why)) for path, why in json.loads(found)]


def _file_system(destination: Destination, *, lengths_only: bool) -> wc.Record:
    return _record(
        platform=destination.platform,
        root_length=destination.root_length,
        path_max=destination.path_max,
        name_max=destination.name_max,
        long_paths=destination.long_paths,
        lengths_only=lengths_only,
    )


@dataclass(frozen=True)
class PathMappingRule:
    """Maps paths under ``source_path`` (of ``source_path_format``, ``posix`` or ``windows``)
    to ``destination_path`` on this machine."""

    source_path_format: PathFormat
    source_path: str
    destination_path: str

    def __post_init__(self) -> None:
        check_choice(
            "a path mapping rule's source_path_format", self.source_path_format, PathFormat
        )


def map_path(rules: Sequence[PathMappingRule], path: str, separator: str) -> str | None:
    """``path`` mapped by the most specific rule, or None when none applies."""
    wit = [
        _record(
            source_path_format=r.source_path_format,
            source_path=r.source_path,
            destination_path=r.destination_path,
        )
        for r in rules
    ]
    mapped = instance_for().call("sync", "map-path", wit, path, separator)
    return None if mapped is None else str(mapped)


# --- Downloads: the plan, output patterns and internal names (wit/download.wit) -------------

#: The kinds of names a download gives its own files (``internal-kind``).
InternalKind = Literal["staging", "temporary", "mounts"]


#: What stands at a manifest path: path, kind (``"f"`` a regular file), size, mtime in µs.
Found = tuple[str, str, int, int]


@dataclass(frozen=True)
class DownloadDestination:
    """One destination of a download (the WIT ``destination``)."""

    #: The merged v2023-03-03 manifest landing there, encoded.
    manifest: str
    #: What stands at the manifest's paths, as found without following symlinks.
    found: Sequence[Found]
    #: The folder's own path and a separator: a manifest path after it is what people see.
    shown: str
    #: The digests of the files :func:`download_plan` asked to hash here, in its order.
    digests: Sequence[str] | None = None


class Placement(NamedTuple):
    """A file to put in place: ``copy`` when another place takes the downloaded file itself."""

    path: str
    digest: str
    mtime_us: int
    copy: bool
    #: A file that differs stands at ``path`` and is kept (``create-copy``): the content goes
    #: to the first free :func:`copy_name` instead.
    beside: bool = False


@dataclass(frozen=True)
class DestinationPlan:
    #: Each distinct content to download once, ``(digest, size)``.
    contents: list[tuple[str, int]]
    #: Every file to put in place, in path order.
    places: list[Placement]


@dataclass(frozen=True)
class DownloadPlan:
    """What a download does, decided by the component (the WIT ``download-plan``)."""

    files: int
    bytes: int
    unchanged_files: int
    downloaded_files: int
    downloaded_bytes: int
    #: Distinct contents to download over all destinations, and their bytes.
    contents: int
    content_bytes: int
    #: The shown paths of the files that differed, under ``overwritten`` or ``skipped``.
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    #: One per destination, in the order given.
    destinations: list[DestinationPlan] = field(default_factory=list)


@dataclass(frozen=True)
class HashFirst:
    """The digests a plan needs first: per destination, the ``(path, size)`` of the found
    files whose digest decides (regular files of their entry's size and mtime)."""

    files: list[list[tuple[str, int]]]


def _destination(d: DownloadDestination) -> wc.Record:
    digests = None if d.digests is None else bulk(list(d.digests))
    return _record(
        manifest=d.manifest,
        found=bulk(list(d.found)),
        digests=digests,
        shown=bulk(d.shown),  # a path need not be Unicode: it crosses by the escape
    )


def download_plan(
    destinations: Sequence[DownloadDestination], policy: ConflictPolicy
) -> DownloadPlan | HashFirst:
    """The download to ``destinations``, or the files to hash first (then plan again with
    their digests); under ``"error"``, files that differ are refused with a
    ``ValidationError`` naming them."""
    given = [_destination(d) for d in destinations]
    outcome: Any = instance_for().call("download", "plan", given, policy)
    # wasmtime-py gives a variant's payload untagged when the cases' Python types differ.
    if isinstance(outcome, wc.Variant):
        outcome = outcome.payload
    if isinstance(outcome, list):  # hash
        return HashFirst([[(p, size) for p, size in json.loads(rows)] for rows in outcome])
    r = outcome
    bulk = json.loads(r.plan)
    return DownloadPlan(
        files=r.files,
        bytes=r.bytes,
        unchanged_files=getattr(r, "unchanged-files"),
        downloaded_files=getattr(r, "downloaded-files"),
        downloaded_bytes=getattr(r, "downloaded-bytes"),
        contents=r.contents,
        content_bytes=getattr(r, "content-bytes"),
        conflicts=bulk["conflicts"],
        destinations=[
            DestinationPlan(
                contents=[(digest, size) for digest, size in d["contents"]],
                places=[Placement(*p) for p in d["places"]],
            )
            for d in bulk["destinations"]
        ],
    )


def copy_name(destination: Destination, path: str, n: int) -> str:
    """The ``n``th name (from 1) of the copy ``create-copy`` puts beside root-relative
    ``path``, shortened to fit ``destination``: ``name (n).ext``."""
    facts = _file_system(destination, lengths_only=True)
    found: str = instance_for().call("download", "copy-name", facts, bulk(path), n)
    named: str = json.loads(found)
    return named


def output_patterns(directories: Sequence[str], *, windows: bool) -> list[str] | None:
    """Snapshot include patterns for every file below a root's output ``directories`` (None:
    the whole root). A lone surrogate (a name byte that is not UTF-8) becomes U+FFFD, as the
    snapshot's own patterns read it."""
    given = [_lossy(d) for d in directories]
    style = "windows" if windows else "posix"
    found = instance_for().call("download", "output-patterns", given, style)
    return None if found is None else list(found)


def internal_name(kind: InternalKind) -> str:
    """A fresh name of ``kind`` for a download's own file (random each call)."""
    return str(instance_for().call("download", "internal-name", kind, secrets.token_bytes(8)))


def internal_kinds(names: Sequence[str]) -> list[InternalKind | None]:
    """Which kind of internal name each of ``names`` has the shape of, if any. A name that is
    not Unicode (a byte that is not UTF-8, as a lone surrogate) is no internal name, and
    cannot cross as a WIT string."""
    sendable = [n for n in names if _unicode(n)]
    found = iter(instance_for().call("download", "internal-kinds", sendable) if sendable else ())
    return [next(found) if _unicode(n) else None for n in names]


def _lossy(text: str) -> str:
    return text if _unicode(text) else re.sub("[\ud800-\udfff]", "\ufffd", text)


def _unicode(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
