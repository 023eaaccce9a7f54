"""The local S3 servers the benchmarks run against, and the environment their peers read."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobattach import S3Config
from jobattach.local_s3 import LocalS3Server

KEY, SECRET = "benchkey", "benchsecret"
OFFICIAL = Path(".bench/venv-official/bin/python")
BIN = Path(sys.executable).parent


@contextmanager
def rclone(scratch: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with fast_dir() as data:  # the server's objects: a fixture, not the client's disk
        yield from _serve(port, data)


def _serve(port: int, data: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            str(BIN / "rclone"),
            "serve",
            "s3",
            "--auth-key",
            f"{KEY},{SECRET}",
            "--addr",
            f"127.0.0.1:{port}",
            data,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url, timeout=1)
            except urllib.error.HTTPError:
                break  # it answers
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait()


@contextmanager
def moto(scratch: Path) -> Iterator[str]:
    with LocalS3Server() as server:
        yield server.endpoint_url


def fast_dir() -> tempfile.TemporaryDirectory[str]:
    """A directory where creating many files costs what it costs on a usual disk: on tmpfs
    when the machine has one, or where ``JOBATTACH_BENCH_SCRATCH`` says. For the server's
    objects and for downloaded trees; caches stay on the disk, as users have them.

    Not on an ext4 disk without a journal: its inode allocator skips every inode freed in the
    last minutes, so for minutes after a tree is deleted creating a file costs many times what
    it usually does, and whichever side runs after a clean-up would be the slower one.
    """
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    where = os.environ.get("JOBATTACH_BENCH_SCRATCH", shm)
    return tempfile.TemporaryDirectory(prefix="jobattach-bench-", dir=where)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def env_for(url: str, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_ENDPOINT_URL_STS": url,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID": "123456789012",
        "HOME": str(home),
    }


SERVERS = {"rclone": rclone, "moto": moto}


def config_for(url: str) -> S3Config:
    """Our S3 configuration for a benchmark server."""
    return S3Config(
        access_key_id=KEY, secret_access_key=SECRET, region="us-east-1", endpoint_url=url
    )
