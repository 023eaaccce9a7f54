"""VIRTUAL against COPIED inputs: a job of 2,000 files and about 2 GB whose task reads 1% of
them, in the same run against the same local server (rclone serve s3).

Printed for each: the seconds until the task can read its first file (the sync, then that
read), the bytes fetched from S3 by the time the task has read its files, and the read
throughput of the job's one large file (256 MiB): through the mount on its first read
(fetched, verified and served), then the copied file and the mounted one from the disk (the
kernel's cached pages of the file, and of the mount's cached object, dropped first), and from
memory (read again).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from jobattach import (
    AssetReferences,
    FileSystemMode,
    ManifestLocation,
    S3Config,
    S3Location,
    submit_bundle_attachments,
    sync_inputs,
    unmount,
)
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.storage import Bucket
from servers import config_for, fast_dir, rclone

FILES = 2000
LARGE = 256 * 1024 * 1024
#: The small files' size: 2,000 files of about 2 GB in all.
SMALL = (2 * 1000**3 - LARGE) // (FILES - 1)


def make_tree(root: Path) -> list[Path]:
    """The job's files: random bytes, one large file among them."""
    if not (root / "done").exists():
        for i in range(FILES - 1):
            path = root / f"shot{i % 20:02d}" / f"plate.{i:04d}.exr"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(SMALL))
        (root / "cache").mkdir(exist_ok=True)
        (root / "cache" / "sim.vdb").write_bytes(os.urandom(LARGE))
        (root / "done").touch()
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "done")


def drop_pages(*paths: Path) -> None:
    """Has the kernel forget the cached pages of ``paths`` (written out first): the next
    read comes from the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            with contextlib.suppress(OSError):  # a FUSE file may take no fsync
                os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_rate(path: Path) -> float:
    """GB/s reading ``path`` whole."""
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        n = 0
        while chunk := os.read(fd, 1 << 20):
            n += len(chunk)
        return n / (time.perf_counter() - t0) / 1e9
    finally:
        os.close(fd)


def run(
    where: S3Location,
    attachments: dict[str, Any],
    session: Path,
    config: S3Config,
    mode: FileSystemMode,
    root: Path,
    read: list[Path],
) -> tuple[float, int, list[float]]:
    """One side: seconds to the task's first read, bytes fetched, large-file GB/s."""
    t0 = time.perf_counter()
    result = sync_inputs(where, attachments, session, s3=config, file_system=mode)
    local = Path(result.roots[str(root)])
    (local / read[0]).read_bytes()
    first = time.perf_counter() - t0
    for r in read[1:]:
        (local / r).read_bytes()
    big = local / "cache" / "sim.vdb"
    if mode == "COPIED":
        drop_pages(big)
        return first, result.processed_bytes, [math.nan, read_rate(big), read_rate(big)]
    (state,) = session.glob(".jobattach-mounts-*")
    fetched = sum(p.stat().st_size for p in (state / "objects").iterdir())
    cold = read_rate(big)  # fetched, verified and served
    drop_pages(big, max((state / "objects").iterdir(), key=lambda p: p.stat().st_size))
    return first, fetched, [cold, read_rate(big), read_rate(big)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path(".bench"))
    args = ap.parse_args()
    root = (args.dir / f"virtual-tree-{FILES}-{SMALL}-{LARGE}").resolve()
    files = make_tree(root)
    rel = [p.relative_to(root) for p in files]
    read = random.Random(15).sample([r for r in rel if r.name != "sim.vdb"], max(1, FILES // 100))
    with fast_dir() as tmp, rclone(Path(tmp)) as url:
        config = config_for(url)
        Bucket("bench", config).create()
        scratch = Path(tmp)
        attachments = submit_bundle_attachments(
            "us-east-1",
            S3Location("bench", "JA"),
            ManifestLocation("farm-bench", "queue-bench"),
            AssetReferences([str(p) for p in files]),
            s3=config,
            hash_cache=HashCache(scratch / "digests.sqlite3"),
            check_cache=S3CheckCache(scratch / "s3.sqlite3"),
        ).attachments
        where = S3Location("bench", "JA")
        rows = []
        with tempfile.TemporaryDirectory(dir=args.dir) as sessions:  # on the disk, as workers
            for mode in ("COPIED", "VIRTUAL"):
                session = Path(sessions) / mode
                try:
                    rows.append(run(where, attachments, session, config, mode, root, read))
                finally:
                    unmount(session)
    (c_first, c_bytes, c_rates), (v_first, v_bytes, v_rates) = rows
    total = sum(p.stat().st_size for p in files)
    print(f"{FILES} files, {total / 1e9:.2f} GB; the task reads {len(read)}")
    print(f"{'':<38} {'COPIED':>8} {'VIRTUAL':>8} {'ratio':>8}")
    row = "{:<38} {:>8} {:>8} {:>8}"
    print(row.format("first read after (s)", *cells(c_first, v_first, c_first / v_first)))
    print(row.format("bytes fetched (MB)", *cells(c_bytes / 1e6, v_bytes / 1e6, c_bytes / v_bytes)))
    labels = ("first read (fetched)", "from the disk", "from memory")
    for label, ours, copied in zip(labels, v_rates, c_rates):
        print(row.format(f"large file GB/s, {label}", *cells(copied, ours, ours / copied)))
    print("ratio: COPIED / VIRTUAL for seconds and bytes, VIRTUAL / COPIED for GB/s")


def cells(copied: float, virtual: float, ratio: float) -> list[str]:
    return ["-" if math.isnan(v) else f"{v:.2f}" for v in (copied, virtual)] + [
        "-" if math.isnan(ratio) else f"{ratio:.2f}x"
    ]


if __name__ == "__main__":
    main()
