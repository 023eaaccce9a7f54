"""The ``jobattach`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import AttachmentError, hash_file, versions


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
