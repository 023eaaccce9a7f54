"""The ``jobattach`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from jobattach_host.choices import (
    V2023,
    V2025_SNAPSHOT,
    ConflictPolicy,
    FileSystemMode,
    ManifestKind,
)
from jobattach_host.errors import AttachmentError, FileAccessError, ValidationError
from jobattach_host.sizes import shown_size

# Each command imports what it runs inside its handler: the S3 commands' modules load boto3,
# which costs every other command a fifth of a second.
if TYPE_CHECKING:
    from . import (
        DownloadResult,
        Manifest,
        PathMappingRule,
        ProgressReport,
        QueueOutputsResult,
        StorageProfile,
    )


def _version_text() -> str:
    from . import versions

    v = versions()
    return f"jobattach {v['jobattach']} (engine component {v['engine']}, wasmtime {v['wasmtime']})"


class _VersionAction(argparse.Action):
    """Prints the versions lazily, so ``--help`` does not load the component."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(_version_text())
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jobattach", description="Job attachments for Deadline Cloud.")
    p.add_argument(
        "--version",
        action=_VersionAction,
        nargs=0,
        help="print the package, engine component and wasmtime versions",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    h = sub.add_parser("hash", help="print the xxh128 digest of files, as xxh128sum does")
    h.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    h.add_argument("--json", action="store_true", help="print a JSON object of path to digest")

    m = sub.add_parser("manifest", help="make, compare, merge and store v2023-03-03 manifests")
    msub = m.add_subparsers(dest="manifest_command", required=True, metavar="ACTION")
    snap = msub.add_parser("snapshot", help="write the manifest of a directory")
    snap.add_argument("root", type=Path, metavar="ROOT")
    snap.add_argument("-o", "--output", type=Path, help="write here instead of to stdout")
    snap.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="keep only matching files (repeatable)",
    )
    snap.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out matching files (repeatable)",
    )
    snap.add_argument("--no-cache", action="store_true", help="hash every file afresh")
    snap.add_argument(
        "--format",
        choices=[V2023, V2025_SNAPSHOT],
        default=V2023,
        help="manifest format (default %(default)s)",
    )
    diff = msub.add_parser("diff", help="compare a manifest with another or with a directory")
    diff.add_argument("old", type=Path, metavar="A")
    diff.add_argument("new", type=Path, nargs="?", metavar="B")
    diff.add_argument("--root", type=Path, help="compare A with this directory instead")
    diff.add_argument(
        "--hash",
        action="store_true",
        help="with --root, compare files by hash instead of size and mtime",
    )
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    conv = msub.add_parser("convert", help="convert a manifest to another format, losslessly")
    conv.add_argument("manifest", type=Path, metavar="MANIFEST")
    conv.add_argument("--format", required=True, choices=[V2023, V2025_SNAPSHOT])
    conv.add_argument("-o", "--output", type=Path, help="write here instead of to stdout")
    merge = msub.add_parser("merge", help="merge manifests of one root, later ones winning")
    merge.add_argument("manifests", type=Path, nargs="+", metavar="MANIFEST")
    merge.add_argument("-o", "--output", type=Path, help="write here instead of to stdout")
    _manifest_store_parsers(msub)

    a = sub.add_parser("attachments", help="submit a job's attachments to S3")
    asub = a.add_subparsers(dest="attachments_command", required=True, metavar="ACTION")
    up = asub.add_parser("upload", help="upload inputs and print the job's attachments JSON")
    up.add_argument("--bucket", required=True)
    up.add_argument("--root-prefix", required=True)
    up.add_argument("--farm-id", required=True)
    up.add_argument("--queue-id", required=True)
    for flag, metavar, what in (
        ("--input", "PATH", "input files"),
        ("--input-dir", "DIR", "input directories: every file below them is an input"),
        ("--output-dir", "DIR", "directories the job writes"),
        ("--reference", "PATH", "paths the job refers to without uploading them"),
    ):
        up.add_argument(
            flag,
            action="extend",
            nargs="+",
            default=[],
            metavar=metavar,
            help=f"{what} (the flag may be repeated)",
        )
    up.add_argument(
        "--asset-references",
        type=Path,
        metavar="FILE",
        help="a job bundle's asset_references.yaml or .json (or the bundle's folder): its"
        " inputs, output directories and referenced paths, with those given as flags",
    )
    up.add_argument(
        "--storage-profile",
        type=Path,
        metavar="FILE",
        help="JSON with fileSystemLocations: [{name, path, type}]",
    )
    up.add_argument(
        "--require-paths-exist",
        action="store_true",
        help="fail, naming them, on inputs that cannot be uploaded (missing, special files,"
        " symlinks leading out, names a manifest cannot carry) instead of leaving them out",
    )
    up.add_argument("--file-system", choices=get_args(FileSystemMode), default="COPIED")
    up.add_argument(
        "--json",
        action="store_true",
        help="print the attachments JSON alone, with no progress (inputs left out go to"
        " stderr as a JSON object)",
    )

    down = asub.add_parser("download", help="download a job's inputs from its attachments JSON")
    down.add_argument("--bucket", required=True)
    down.add_argument("--root-prefix", required=True)
    down.add_argument(
        "--attachments", required=True, type=Path, metavar="FILE", help="the job's attachments JSON"
    )
    down.add_argument(
        "--dest",
        required=True,
        type=Path,
        metavar="DIR",
        help="each root lands in its own folder here unless a rule maps it",
    )
    _path_mapping_option(down)
    _download_options(down)
    how = down.add_mutually_exclusive_group()
    how.add_argument(
        "--virtual",
        dest="file_system",
        action="store_const",
        const="VIRTUAL",
        help="mount each root instead (Linux, FUSE): files listed at once, each fetched on its"
        " first read, served by a background process until `attachments unmount`"
        " (default: as the attachments' fileSystem says)",
    )
    how.add_argument(
        "--copied",
        dest="file_system",
        action="store_const",
        const="COPIED",
        help="copy every input, whatever the attachments' fileSystem says",
    )
    down.add_argument(
        "--no-fallback",
        action="store_true",
        help="fail where a mount cannot be made, rather than copy with a warning",
    )

    um = asub.add_parser("unmount", help="unmount every root mounted at or below a directory")
    um.add_argument("dest", type=Path, metavar="DEST")
    um.add_argument("--json", action="store_true", help="print the unmounted paths as JSON")

    outs = asub.add_parser(
        "download-outputs",
        help="download a job's outputs (each task's latest run), or a queue's as they come",
    )
    outs.add_argument("--bucket", required=True)
    outs.add_argument("--root-prefix", required=True)
    outs.add_argument("--farm-id", required=True)
    outs.add_argument("--queue-id", required=True)
    which = outs.add_mutually_exclusive_group(required=True)
    which.add_argument("--job-id", help="this job's outputs")
    which.add_argument(
        "--queue-wide",
        action="store_true",
        help="every job's outputs written since --checkpoint, each session action's, found by"
        " listing the queue's manifests in S3; the checkpoint is written after each job",
    )
    outs.add_argument("--step-id", default="", help="only this step's outputs")
    outs.add_argument("--task-id", default="", help="only this task's outputs (needs --step-id)")
    outs.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="with --queue-wide: the JSON file of what earlier runs downloaded (made when missing)",
    )
    outs.add_argument(
        "--lookback",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="with --queue-wide: the longest an output manifest's upload takes"
        " (default %(default)s)",
    )
    outs.add_argument(
        "--dest",
        type=Path,
        metavar="DIR",
        help="each root lands in its own folder here (default: the job's own root paths)",
    )
    _path_mapping_option(outs)
    _download_options(outs)

    ver = asub.add_parser(
        "verify",
        help="check that each object under the root prefix's Data/ holds the content its name"
        " says (by S3's stored XXHASH128 checksum, else downloaded and hashed); exits 3 when"
        " bad objects are found and not deleted",
    )
    ver.add_argument("--bucket", required=True)
    ver.add_argument("--root-prefix", required=True)
    ver.add_argument(
        "--fix",
        action="store_true",
        help="delete the bad objects (each only while it is the object checked) and make this"
        " machine's S3-check caches forget them, so the next submission uploads them again",
    )
    ver.add_argument("--json", action="store_true", help="print the report as JSON")

    sy = sub.add_parser(
        "sync",
        help="mirror a directory to s3:// or gs://bucket/prefix, user@host:/path (SSH) or"
        " another directory, or back",
    )
    sy.add_argument("source", metavar="SRC")
    sy.add_argument("dest", metavar="DEST")
    sy.add_argument("--delete", action="store_true", help="remove what the source lacks")
    sy.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    sy.add_argument("--include", action="append", default=[], metavar="GLOB")
    sy.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    sy.add_argument(
        "--hash",
        action="store_true",
        help="compare files of the same size by xxh3-128, not by time",
    )
    sy.add_argument("--json", action="store_true", help="print the statistics as JSON")
    sy.add_argument("--gcs-credentials", metavar="FILE", help="gs://: a service account's key")
    sy.add_argument("--gcs-endpoint", metavar="URL", help="gs://: another endpoint (an emulator)")
    sy.add_argument("--gcs-anonymous", action="store_true", help="gs://: send no credentials")
    sy.add_argument("--ssh-key", metavar="FILE", help="the private key for an SSH side")
    sy.add_argument("--ssh-known-hosts", metavar="FILE", help="default: ~/.ssh/known_hosts")
    sy.add_argument(
        "--ssh-host-key-policy",
        choices=["strict", "accept-new", "insecure"],
        default="strict",
        help="an unknown host key: refused, recorded and trusted, or accepted unchecked",
    )
    sy.add_argument("--ssh-port", type=int, metavar="N", help="over the path's port (22)")

    d = sub.add_parser("demo", help="submit a sample tree's attachments to a local S3 server")
    d.add_argument("--endpoint-url", help="use this S3 endpoint instead of starting a local one")
    d.add_argument("--bucket", default="jobattach-demo")
    d.add_argument("--files", type=int, default=200, help="files in the sample tree")
    d.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _manifest_store_parsers(msub: Any) -> None:
    mup = msub.add_parser(
        "upload", help="put a manifest file in a queue's manifest store, below Manifests/"
    )
    mup.add_argument("manifest", type=Path, metavar="FILE", help="a manifest of either format")
    mup.add_argument("--bucket", required=True)
    mup.add_argument("--root-prefix", required=True)
    mup.add_argument(
        "--prefix",
        default="",
        metavar="FOLDERS",
        help="folders below Manifests/ to put it in (the object is named as the file is)",
    )
    mup.add_argument("--root", help="the root it describes, named in its asset-root metadata")
    mup.add_argument("--file-system-location", metavar="NAME", help="the root's location name")
    mup.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an object holding another manifest at that key (a job may rely on it)",
    )
    mup.add_argument("--json", action="store_true", help="print where it went as JSON")
    mdl = msub.add_parser(
        "download", help="write a job's input and output manifests, one merged file per root"
    )
    _job_options(mdl)
    mdl.add_argument(
        "--kind",
        choices=get_args(ManifestKind),
        default="all",
        help="input: those the attachments name; output: those a download of outputs reads"
        " (each task's latest run); all: both, merged by root",
    )
    mdl.add_argument(
        "--attachments",
        type=Path,
        metavar="FILE",
        help="the job's attachments JSON, as GetJob returns it (needed for inputs: this tool"
        " calls no Deadline Cloud API)",
    )
    mdl.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="DIR",
        help="write the manifests here, one per root, named after it (made when missing)",
    )
    mdl.add_argument(
        "--on-conflict",
        choices=[c for c in get_args(ConflictPolicy) if c != "create-copy"],
        default="overwrite",
        help="what to do with a file of other content where a manifest goes (default %(default)s)",
    )
    mdl.add_argument("--json", action="store_true", help="print the result as JSON")


def _job_options(p: argparse.ArgumentParser) -> None:
    """The queue's bucket and root prefix, and a job, or one of its steps or tasks."""
    p.add_argument("--bucket", required=True)
    p.add_argument("--root-prefix", required=True)
    p.add_argument("--farm-id", required=True)
    p.add_argument("--queue-id", required=True)
    p.add_argument("--job-id", required=True)
    p.add_argument("--step-id", default="", help="only this step's outputs")
    p.add_argument("--task-id", default="", help="only this task's outputs (needs --step-id)")


def _download_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--on-conflict",
        choices=get_args(ConflictPolicy),
        default="overwrite",
        help="what to do with local files that differ (default %(default)s); create-copy keeps"
        " them and writes the job's file beside as 'name (1).ext'",
    )
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="download only root-relative paths it matches (repeatable: any of them)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out root-relative paths it matches, after --include (repeatable)",
    )
    p.add_argument(
        "--job-group",
        metavar="GROUP",
        help="give what is written to this group (name or id) with group write added, as the"
        " worker does for a job's user (POSIX; root or a member of the group)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _download_choices(args: argparse.Namespace) -> dict[str, Any]:
    """What every download command takes from the options ``_download_options`` adds."""
    from .worker import JobUser

    return {
        "on_conflict": args.on_conflict,
        "include": args.include,
        "exclude": args.exclude,
        "job_user": JobUser(args.job_group) if args.job_group else None,
        "path_mapping_rules": _path_mapping_rules(args.path_mapping_rules),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "hash":
            return _hash(args.paths, as_json=args.json)
        if args.command == "demo":
            return _demo(args)
        if args.command == "manifest":
            return _MANIFEST_COMMANDS[args.manifest_command](args)
        if args.command == "sync":
            return _sync(args)
        if args.command == "attachments":
            return _ATTACHMENTS_COMMANDS[args.attachments_command](args)
    except AttachmentError as e:
        print(f"jobattach: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # what was done stays done; no manifest points at a gap
        print("jobattach: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command}")


def _hash(paths: Sequence[Path], *, as_json: bool) -> int:
    from jobattach_host.hashing import hash_file

    digests = {str(p): hash_file(p) for p in paths}
    if as_json:
        print(json.dumps(digests, indent=2))
    else:
        for path, digest in digests.items():
            print(f"{digest}  {path}")
    return 0


def _write(data: bytes, output: Path | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        try:
            output.write_bytes(data)
        except OSError as e:
            raise FileAccessError(f"cannot write: {e.strerror}", path=str(output)) from None


def _read_manifest(path: Path) -> Manifest:
    from .manifest import Manifest

    try:
        return Manifest.decode(path.read_bytes())
    except OSError as e:
        raise FileAccessError(f"cannot read manifest: {e.strerror}", path=str(path)) from None
    except ValidationError as e:
        raise ValidationError(f"{path}: {e}", kind=e.kind) from None


def _snapshot(args: argparse.Namespace) -> int:
    from .snapshot import create_manifest

    with _progress_line(quiet=False) as progress:
        r = create_manifest(
            args.root,
            include=args.include,
            exclude=args.exclude,
            format=args.format,
            cache=not args.no_cache,
            progress_callback=progress,
        )
    _write(r.manifest.encode(), args.output)
    skipped = ", ".join(f"{len(paths)} {why}" for why, paths in sorted(r.skipped.items()))
    print(
        f"jobattach: {len(r.manifest)} files, {r.manifest.total_size} bytes"
        f" ({r.hashed_files} hashed, {r.cached_files} from the cache) in {r.total_time:.2f} s"
        + (f"; skipped {skipped}" if skipped else "")
        + (f"; {r.excluded} excluded by patterns" if r.excluded else ""),
        file=sys.stderr,
    )
    return 0


def _diff(args: argparse.Namespace) -> int:
    from .manifest import diff_directory, diff_manifests

    old = _read_manifest(args.old)
    if (args.new is None) == (args.root is None):
        raise ValidationError("give either a second manifest B or --root DIR")
    if args.hash and args.root is None:  # two manifests compare by hash already
        raise ValidationError("--hash compares with a directory: give it with --root DIR")
    if args.root is not None:
        d = diff_directory(old, args.root, by_hash=args.hash)
    else:
        d = diff_manifests(old, _read_manifest(args.new))
    if args.json:
        print(json.dumps(d.as_dict(), indent=2))
        return 0
    lines = [(e.path, "+") for e in d.added] + [(e.path, "-") for e in d.deleted]
    lines += [(new.path, "M") for _, new in d.modified]
    for path, mark in sorted(lines):
        print(f"{mark} {path}")
    print(
        f"{len(d.added)} added, {len(d.modified)} modified, {len(d.deleted)} deleted,"
        f" {d.unchanged} unchanged",
        file=sys.stderr,
    )
    return 0


def _merge(args: argparse.Namespace) -> int:
    from .manifest import merge_manifests

    _write(merge_manifests([_read_manifest(p) for p in args.manifests]).encode(), args.output)
    return 0


def _convert(args: argparse.Namespace) -> int:
    _write(_read_manifest(args.manifest).convert(args.format).encode(), args.output)
    return 0


def _manifest_upload(args: argparse.Namespace) -> int:
    import dataclasses

    from .manifest_store import upload_manifest
    from .submit import S3Location

    r = upload_manifest(
        args.manifest,
        S3Location(args.bucket, args.root_prefix),
        prefix=args.prefix,
        root=args.root,
        file_system_location=args.file_system_location,
        overwrite=args.overwrite,
    )
    if args.json:
        print(json.dumps(dataclasses.asdict(r), indent=2))
        return 0
    print(f"s3://{r.bucket}/{r.key}")
    held = "S3 held it already" if r.outcome == "unchanged" else "uploaded"
    print(
        f"jobattach: {held}: {r.size} bytes, hash {r.hash}; inputManifestPath {r.manifest_path}",
        file=sys.stderr,
    )
    return 0


def _manifest_download(args: argparse.Namespace) -> int:
    import dataclasses

    from .manifest_store import download_manifests
    from .submit import S3Location

    r = download_manifests(
        S3Location(args.bucket, args.root_prefix),
        args.farm_id,
        args.queue_id,
        args.job_id,
        args.output,
        attachments=None if args.attachments is None else _json_file(args.attachments),
        kind=args.kind,
        step_id=args.step_id,
        task_id=args.task_id,
        on_conflict=args.on_conflict,
    )
    if args.json:
        print(json.dumps(dataclasses.asdict(r), indent=2))
        return 0
    said = {"overwritten": "replaced a different file", "skipped": "kept a different file"}
    for d in r.downloaded:
        print(f"{d.manifest_root} -> {d.local_manifest_path}")
        if d.outcome in said:
            print(f"jobattach: {said[d.outcome]}: {d.local_manifest_path}", file=sys.stderr)
    print(f"jobattach: {len(r.downloaded)} manifests", file=sys.stderr)
    return 0


_MANIFEST_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "snapshot": _snapshot,
    "diff": _diff,
    "merge": _merge,
    "convert": _convert,
    "upload": _manifest_upload,
    "download": _manifest_download,
}


def _storage_profile(path: Path | None) -> StorageProfile | None:
    from .submit import FileSystemLocation, StorageProfile

    if path is None:
        return None
    try:
        doc = json.loads(path.read_text())
        return StorageProfile(
            [
                FileSystemLocation(x["name"], x["path"], x["type"])
                for x in doc["fileSystemLocations"]
            ]
        )
    except OSError as e:
        raise FileAccessError(f"cannot read storage profile: {e.strerror}", path=str(path)) from e
    except (ValueError, KeyError, TypeError) as e:
        raise ValidationError(
            f"{path}: a storage profile is JSON with fileSystemLocations: [{{name, path, type}}]"
            f" ({e})"
        ) from e


class _ProgressLine:
    """A progress bar on stderr, redrawn at most ten times a second."""

    WIDTH = 16

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, r: ProgressReport) -> bool:
        now = time.monotonic()
        if now - self.last >= 0.1 or (r.total_bytes and r.processed_bytes == r.total_bytes):
            self.last = now
            print(f"\r{_progress_text(r, self.WIDTH):<79}", end="", file=sys.stderr, flush=True)
        return True


def _progress_text(r: ProgressReport, width: int) -> str:
    """``hashing     [#######---------]  48%  1.2/2.5 GB  1,204/2,500 files  310 MB/s``."""
    if r.phase == "scanning":  # nothing to measure against yet
        return f"{r.phase:<11} {r.processed_files:,} files, {shown_size(r.processed_bytes)} found"
    if r.total_bytes:
        part = r.processed_bytes / r.total_bytes
    else:
        part = r.processed_files / r.total_files if r.total_files else 1.0
    filled = round(width * min(max(part, 0.0), 1.0))
    return (
        f"{r.phase:<11} [{'#' * filled}{'-' * (width - filled)}] {part:4.0%}"
        f"  {shown_size(r.processed_bytes, r.total_bytes)}"
        f"  {r.processed_files:,}/{r.total_files:,} files"
        f"  {shown_size(r.transfer_rate)}/s"
    )


@contextmanager
def _progress_line(quiet: bool) -> Iterator[_ProgressLine | None]:
    """A progress line on a terminal (ended with a newline), none with --json or off one."""
    show = not quiet and sys.stderr.isatty()
    try:
        yield _ProgressLine() if show else None
    finally:
        if show:
            print(file=sys.stderr)


def _upload(args: argparse.Namespace) -> int:
    from .asset_references import AssetReferences, read_asset_references
    from .submit import (
        LEFT_OUT,
        BundleSubmitOptions,
        ManifestLocation,
        S3Location,
        submit_bundle_attachments,
    )

    given = AssetReferences(args.input, args.output_dir, args.reference, args.input_dir)
    if args.asset_references is not None:
        given = read_asset_references(args.asset_references).union(given)
    if not any((given.input_filenames, given.input_directories, given.output_directories)):
        raise ValidationError(
            "nothing to submit: give --input, --input-dir, --output-dir or --asset-references"
        )

    with _progress_line(args.json) as progress:
        result = submit_bundle_attachments(
            None,
            S3Location(args.bucket, args.root_prefix),
            ManifestLocation(args.farm_id, args.queue_id),
            given,
            _storage_profile(args.storage_profile),
            BundleSubmitOptions(args.require_paths_exist, args.file_system),
            progress,
        )
    left_out = result.left_out
    if args.json:
        if left_out:  # stdout stays what CreateJob takes
            print(json.dumps({"left_out": left_out}), file=sys.stderr)
        print(result.attachments_json)
        return 0
    for path, why in left_out.items():
        shown = AttachmentError(LEFT_OUT.get(why, why), path=path)  # escaped as errors are
        print(f"jobattach: left out {shown}", file=sys.stderr)
    st = result.statistics
    print(json.dumps(result.attachments, indent=2))
    print(
        f"jobattach: {st.total_files} files, {st.total_bytes / 1e6:.1f} MB:"
        f" {st.processed_files} uploaded ({st.processed_bytes / 1e6:.1f} MB),"
        f" {st.skipped_files} not sent (in S3 already, or the same content as another);"
        f" {st.total_time:.2f} s"
        + (f"; {len(left_out)} inputs left out (named above)" if left_out else ""),
        file=sys.stderr,
    )
    return 0


def _path_mapping_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--path-mapping-rules",
        type=Path,
        metavar="FILE",
        help="JSON: Open Job Description path mapping rules ({'path_mapping_rules': [{"
        "source_path_format, source_path, destination_path}]}, or the list alone)",
    )


def _path_mapping_rules(path: Path | None) -> list[PathMappingRule]:
    from jobattach_host.sync import PathMappingRule

    if path is None:
        return []
    doc = _json_file(path)
    rules: Any = doc.get("path_mapping_rules", [doc]) if isinstance(doc, dict) else doc
    keys = ("source_path_format", "source_path", "destination_path")
    if not isinstance(rules, list) or not all(
        isinstance(r, dict) and all(isinstance(r.get(k), str) and r[k] for k in keys) for r in rules
    ):
        why = "each path mapping rule has source_path_format, source_path and destination_path"
        raise ValidationError(f"{path}: {why}, as strings")
    return [
        PathMappingRule(r["source_path_format"].lower(), r["source_path"], r["destination_path"])
        for r in rules
    ]


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as e:
        raise FileAccessError(f"cannot read: {e.strerror}", path=str(path)) from e
    except ValueError as e:
        raise ValidationError(f"{path}: not JSON ({e})") from e


def _download(args: argparse.Namespace) -> int:
    from .submit import S3Location
    from .worker import sync_inputs

    with _progress_line(args.json) as progress:
        result = sync_inputs(
            S3Location(args.bucket, args.root_prefix),
            _json_file(args.attachments),
            args.dest,
            **_download_choices(args),
            progress_callback=progress,
            file_system=args.file_system,
            fallback=not args.no_fallback,
        )
    return _report_download(result, as_json=args.json)


def _unmount(args: argparse.Namespace) -> int:
    from .virtual import unmount

    points = unmount(args.dest)
    if args.json:
        print(json.dumps({"unmounted": points}, indent=2))
    else:
        for point in points:
            print(point)
        print(f"jobattach: {len(points)} mounts taken away", file=sys.stderr)
    return 0


def _download_outputs(args: argparse.Namespace) -> int:
    from .submit import S3Location
    from .worker import download_job_outputs

    if args.queue_wide:
        return _download_queue_outputs(args)
    if args.checkpoint is not None:
        raise ValidationError("--checkpoint goes with --queue-wide")
    with _progress_line(args.json) as progress:
        result = download_job_outputs(
            S3Location(args.bucket, args.root_prefix),
            args.farm_id,
            args.queue_id,
            args.job_id,
            args.dest,
            step_id=args.step_id,
            task_id=args.task_id,
            **_download_choices(args),
            progress_callback=progress,
        )
    return _report_download(result, as_json=args.json)


def _download_queue_outputs(args: argparse.Namespace) -> int:
    from .queue_outputs import download_queue_outputs
    from .submit import S3Location

    if args.checkpoint is None:
        raise ValidationError("--queue-wide needs --checkpoint FILE")
    if args.step_id or args.task_id:
        raise ValidationError("--step-id and --task-id go with --job-id, not --queue-wide")
    with _progress_line(args.json) as progress:
        r = download_queue_outputs(
            S3Location(args.bucket, args.root_prefix),
            args.farm_id,
            args.queue_id,
            args.checkpoint,
            args.dest,
            **_download_choices(args),
            progress_callback=progress,
            lookback=args.lookback,
        )
    if args.json:
        jobs = {
            job: {**_download_fields(result), "manifest_keys": r.manifest_keys[job]}
            for job, result in r.jobs.items()
        }
        print(json.dumps({**_download_fields(r), "jobs": jobs}, indent=2))
        return 0
    for job, result in r.jobs.items():
        for root, local in result.roots.items():
            print(f"{job}: {root} -> {local}")
    manifests = sum(map(len, r.manifest_keys.values()))
    print(
        f"jobattach: {manifests} new output manifests of {len(r.jobs)} jobs, {_counts(r)}",
        file=sys.stderr,
    )
    return 0


def _download_fields(result: object) -> dict[str, Any]:
    """A download's result as JSON takes it: everything but the merged manifests (which are
    for sync_outputs, not for reading) and what is spelled out otherwise."""
    import dataclasses

    assert dataclasses.is_dataclass(result)
    left_out = {"manifests", "jobs", "manifest_keys"}
    fields = (f.name for f in dataclasses.fields(result) if f.name not in left_out)
    return {name: getattr(result, name) for name in fields}


def _report_download(result: DownloadResult, *, as_json: bool) -> int:
    if as_json:
        print(json.dumps(_download_fields(result), indent=2))
        return 0
    for root, local in result.roots.items():
        print(f"{root} -> {local}")
    if result.file_system == "VIRTUAL":
        print(
            f"jobattach: {result.total_files} files, {result.total_bytes / 1e6:.1f} MB, mounted"
            f" (each fetched on its first read); {result.total_time:.2f} s",
            file=sys.stderr,
        )
        return 0
    print(f"jobattach: {_counts(result)}", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .submit import S3Location
    from .verify import verify_content

    with _progress_line(args.json) as progress:
        r = verify_content(
            S3Location(args.bucket, args.root_prefix), fix=args.fix, progress_callback=progress
        )
    if args.json:
        print(json.dumps(r.as_dict(), indent=2))
        return 3 if r.remaining else 0
    for b in r.bad:
        print(f"{'deleted' if b.deleted else 'bad'} {b.key}: holds {b.actual} ({b.found_by})")
    for key in r.foreign:
        print(f"foreign {key}: not named by a digest, left as it is")
    for key, why in r.unchecked.items():
        print(f"jobattach: not checked {key}: {why}", file=sys.stderr)
    print(
        f"jobattach: {r.total_files} objects, {r.total_bytes / 1e6:.1f} MB: {r.checked_files}"
        f" checked ({r.checksum_files} by stored checksum, {r.downloaded_files} downloaded,"
        f" {r.downloaded_bytes / 1e6:.1f} MB), {len(r.bad)} bad, {r.deleted_files} deleted,"
        f" {len(r.foreign)} foreign, {len(r.unchecked)} unchecked; {r.total_time:.2f} s",
        file=sys.stderr,
    )
    return 3 if r.remaining else 0


def _counts(r: DownloadResult | QueueOutputsResult) -> str:
    """``4 files, 1.2 MB: 3 downloaded, 1 already there, 1 overwritten; 0.52 s``."""
    return (
        f"{r.total_files} files, {r.total_bytes / 1e6:.1f} MB:"
        f" {r.processed_files} downloaded, {r.skipped_files} already there"
        + "".join(f", {len(v)} {k}" for k, v in sorted(r.conflicts.items()))
        + f"; {r.total_time:.2f} s"
    )


_ATTACHMENTS_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "upload": _upload,
    "download": _download,
    "unmount": _unmount,
    "download-outputs": _download_outputs,
    "verify": _verify,
}


def _sync(args: argparse.Namespace) -> int:
    import dataclasses

    from .mirror import GcsConfig, sync
    from .ssh import SshConfig

    gcs = GcsConfig(
        credentials_file=args.gcs_credentials,
        anonymous=args.gcs_anonymous,
        endpoint_url=args.gcs_endpoint,
    )
    ssh = SshConfig(
        key_file=args.ssh_key,
        known_hosts=args.ssh_known_hosts,
        host_key_policy=args.ssh_host_key_policy,
        port=args.ssh_port,
    )
    with _progress_line(args.json) as progress:
        stats = sync(
            args.source,
            args.dest,
            delete=args.delete,
            dry_run=args.dry_run,
            include=tuple(args.include),
            exclude=tuple(args.exclude),
            by_hash=args.hash,
            gcs=gcs,
            ssh=ssh,
            progress_callback=progress,
        )
    if args.json:
        print(json.dumps(dataclasses.asdict(stats), indent=2))
        return 0
    verb = "would copy" if stats.dry_run else "copied"
    print(
        f"jobattach: {stats.total_files} files: {verb} {stats.processed_files}"
        f" ({stats.processed_bytes / 1e6:.1f} MB), {stats.skipped_files} unchanged,"
        f" {stats.deleted_files} {'to delete' if stats.dry_run else 'deleted'}"
        + (f", {len(stats.unsupported)} unsupported names" if stats.unsupported else "")
        + f"; {stats.total_time:.2f} s",
        file=sys.stderr,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    result = demo.run(endpoint_url=args.endpoint_url, bucket=args.bucket, files=args.files)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(result.summary())
        print("  attachments  " + json.dumps(result.attachments, indent=2).replace("\n", "\n  "))
        print(_version_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
