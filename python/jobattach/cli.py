"""The ``jobattach`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import (
    AttachmentError,
    FileAccessError,
    Manifest,
    ValidationError,
    create_manifest,
    diff_directory,
    diff_manifests,
    hash_file,
    merge_manifests,
    versions,
)
from .manifest import V2023, V2025_SNAPSHOT


def _version_text() -> str:
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

    m = sub.add_parser("manifest", help="make, compare and merge v2023-03-03 manifests")
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

    d = sub.add_parser("demo", help="hash a sample tree and upload it to a local S3 server")
    d.add_argument("--endpoint-url", help="use this S3 endpoint instead of starting a local one")
    d.add_argument("--bucket", default="jobattach-demo")
    d.add_argument("--files", type=int, default=200, help="files in the sample tree")
    d.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "hash":
            return _hash(args.paths, as_json=args.json)
        if args.command == "demo":
            return _demo(args)
        if args.command == "manifest":
            return _MANIFEST_COMMANDS[args.manifest_command](args)
    except AttachmentError as e:
        print(f"jobattach: error: {e}", file=sys.stderr)
        return 1
    raise AssertionError(f"unhandled command {args.command}")


def _hash(paths: Sequence[Path], *, as_json: bool) -> int:
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
        output.write_bytes(data)


def _read_manifest(path: Path) -> Manifest:
    try:
        return Manifest.decode(path.read_bytes())
    except OSError as e:
        raise FileAccessError(f"cannot read manifest: {e.strerror}", path=str(path)) from None
    except ValidationError as e:
        raise ValidationError(f"{path}: {e}", kind=e.kind) from None


def _snapshot(args: argparse.Namespace) -> int:
    r = create_manifest(
        args.root,
        include=args.include,
        exclude=args.exclude,
        format=args.format,
        cache=not args.no_cache,
    )
    _write(r.manifest.encode(), args.output)
    skipped = ", ".join(f"{len(paths)} {why}" for why, paths in sorted(r.skipped.items()))
    print(
        f"jobattach: {len(r.manifest)} files, {r.manifest.total_size} bytes"
        f" ({r.hashed} hashed, {r.from_cache} from the cache) in {r.seconds:.2f} s"
        + (f"; skipped {skipped}" if skipped else "")
        + (f"; {r.excluded} excluded by patterns" if r.excluded else ""),
        file=sys.stderr,
    )
    return 0


def _diff(args: argparse.Namespace) -> int:
    old = _read_manifest(args.old)
    if (args.new is None) == (args.root is None):
        raise ValidationError("give either a second manifest B or --root DIR")
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
    _write(merge_manifests([_read_manifest(p) for p in args.manifests]).encode(), args.output)
    return 0


def _convert(args: argparse.Namespace) -> int:
    _write(_read_manifest(args.manifest).convert(args.format).encode(), args.output)
    return 0


_MANIFEST_COMMANDS = {"snapshot": _snapshot, "diff": _diff, "merge": _merge, "convert": _convert}


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    result = demo.run(endpoint_url=args.endpoint_url, bucket=args.bucket, files=args.files)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(result.summary())
        print(_version_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
