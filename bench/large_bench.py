"""Large transfers: awscrt's S3 client against jobattach's (boto3's transfer manager).

One file of ``--mib`` MiB (default 256, above every multipart threshold) is PUT and then GET
by each client against each local server, every client in a process of its own so that its
CPU seconds are its own (the servers run apart). awscrt is not a dependency of the project:
give an interpreter that has it, e.g.

    python -m venv .bench/venv-crt && .bench/venv-crt/bin/pip install awscrt
    .venv/bin/python bench/large_bench.py --crt .bench/venv-crt/bin/python

Both use parts of 16 MiB (``ClientOptions``' default) and eight at a time (jobattach's
``max_pool_connections // 4``); awscrt writes and reads the file by path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve()
MiB = 1 << 20
PART = 16 * MiB
KEY, SECRET = "benchkey", "benchsecret"


def ours(url: str, bucket: str, path: Path, back: Path) -> dict[str, list[float] | str]:
    from jobattach_host.storage import Bucket
    from servers import config_for  # the script's folder; not where awscrt runs

    b, size = Bucket(bucket, config_for(url)), path.stat().st_size
    return {
        "put": _timed(lambda: b.upload_file("big", path)),
        "get": _timed(lambda: b.download_file("big", back, size=size)),
        "get to an open file": _timed(
            lambda: b.download_file("big", back, size=size, sink=lambda: open(back, "wb"))
        ),
    }


def crt(url: str, bucket: str, path: Path, back: Path) -> dict[str, list[float] | str]:
    from awscrt import auth, http, io, s3  # type: ignore[import-not-found]

    host = urlsplit(url).netloc
    bootstrap = io.ClientBootstrap(io.EventLoopGroup(), io.DefaultHostResolver(io.EventLoopGroup()))
    client = s3.S3Client(
        bootstrap=bootstrap,
        region="us-east-1",
        tls_mode=s3.S3RequestTlsMode.DISABLED,
        credential_provider=auth.AwsCredentialsProvider.new_static(KEY, SECRET),
        part_size=PART,
        multipart_upload_threshold=PART,
        max_active_connections_override=8,
    )

    def request(method: str, kind: s3.S3RequestType, **files: Any) -> None:
        headers = http.HttpHeaders([("Host", host)])
        if method == "PUT":
            headers.add("Content-Length", str(path.stat().st_size))
            headers.add("If-None-Match", "*")  # create-only, as jobattach uploads
        key = "big-crt" if method == "PUT" else "big"  # the GET reads what jobattach put
        req = http.HttpRequest(method, f"/{bucket}/{key}", headers)
        done = client.make_request(type=kind, request=req, **files)
        done.finished_future.result()

    def into_open_file() -> None:  # as a confined download must: through an open file
        with open(back, "wb") as f:
            request("GET", s3.S3RequestType.GET_OBJECT, on_body=lambda chunk, **_: f.write(chunk))

    return {
        "put": _timed(lambda: request("PUT", s3.S3RequestType.PUT_OBJECT, send_filepath=str(path))),
        "get": _timed(lambda: request("GET", s3.S3RequestType.GET_OBJECT, recv_filepath=str(back))),
        "get to an open file": _timed(into_open_file),
    }


def _timed(run: Callable[[], object]) -> list[float] | str:
    """Wall and CPU seconds of ``run``, or why it failed."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        run()
    except Exception as e:
        return f"{type(e).__name__}: {e}"[:200]
    return [time.perf_counter() - t0, time.process_time() - c0]


def _client(python: str, side: str, url: str, bucket: str, path: Path, back: Path) -> str:
    flags = ["--side", side, "--url", url, "--bucket", bucket]
    run = subprocess.run(
        [python, str(HERE), *flags, "--file", str(path), "--back", str(back)],
        capture_output=True,
        text=True,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
    )
    lines = run.stdout.strip().splitlines()
    return lines[-1] if run.returncode == 0 and lines else json.dumps({"error": run.stderr[-300:]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--crt", help="a Python that has awscrt")
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--server", choices=["rclone", "moto"], action="append")
    ap.add_argument("--side", choices=["ours", "crt"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--bucket", help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--back", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        measure = ours if args.side == "ours" else crt
        print(json.dumps(measure(args.url, args.bucket, args.file, args.back)))
        return

    from jobattach_host.storage import Bucket
    from servers import SERVERS, config_for, fast_dir

    print(
        f"{'server':<7} {'client':<22} {'PUT s (cpu)':>14} {'GET s (cpu)':>14}"
        f" {'GET to open file':>17}"
    )
    with fast_dir() as scratch:
        path, back = Path(scratch) / "big.bin", Path(scratch) / "back.bin"
        with open(path, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(MiB))
        for name in args.server or ["rclone", "moto"]:
            with tempfile.TemporaryDirectory() as tmp, SERVERS[name](Path(tmp)) as url:
                Bucket("large", config_for(url)).create()
                sides = [("jobattach (boto3 TM)", sys.executable, "ours")]
                if args.crt:
                    sides.append(("awscrt S3Client", args.crt, "crt"))
                for label, python, side in sides:
                    doc = json.loads(_client(python, side, url, "large", path, back))
                    if "error" in doc:
                        print(f"{name:<7} {label:<22} failed: {doc['error']!r}")
                        continue
                    cells = [
                        f"{r[0]:6.2f} ({r[1]:5.2f})" if isinstance(r, list) else "failed"
                        for r in (doc["put"], doc["get"], doc["get to an open file"])
                    ]
                    print(f"{name:<7} {label:<22} {cells[0]:>14} {cells[1]:>14} {cells[2]:>17}")
                    for op in ("put", "get", "get to an open file"):
                        if isinstance(doc[op], str):
                            print(f"        {op.upper()} failed: {doc[op]}")
                    back.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
