"""Upload speed: jobattach against the official implementation and s5cmd, in the same run.

For each tree and each local S3 server (`rclone serve s3` on a directory, and moto), each
side uploads the tree to its own bucket: a first upload with empty caches, then a re-upload of
the unchanged tree with the caches it filled. s5cmd copies the same files (no hashing, no
manifest) as the plain-copy reference, twice: flattened into one prefix, as content-addressed
objects all land under Data/ (the ratio is against this copy), and keeping the tree's folders.
The two differ on rclone, which stores a prefix as a directory and spends more per PUT the
larger that directory grows. Client CPU seconds are printed beside wall time, since the server
shares the machine's two cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from jobattach import (
    AssetReferences,
    ManifestLocation,
    S3Config,
    S3Location,
    submit_bundle_attachments,
)
from jobattach_host import default_engine
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.storage import Bucket
from servers import BIN, OFFICIAL, SERVERS, children_cpu, config_for, env_for
from trees import TREES, read_untimed, tree

HERE = Path(__file__).parent


def official(url: str, bucket: str, root: Path, scratch: Path) -> tuple[float, float]:
    run = subprocess.run(
        [str(OFFICIAL), str(HERE / "official_upload.py"), bucket, str(root), str(scratch / "oc")],
        capture_output=True,
        text=True,
        check=True,
        env=env_for(url, scratch),
    )
    doc = json.loads(run.stdout.strip().splitlines()[-1])
    return float(doc["seconds"]), float(doc["cpu"])


def ours(config: S3Config, bucket: str, files: list[str], scratch: Path) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    hashes = HashCache(scratch / "ours" / "digests.sqlite3")
    checks = S3CheckCache(scratch / "ours" / "s3.sqlite3")
    try:
        submit_bundle_attachments(
            "us-east-1",
            S3Location(bucket, "JA"),
            ManifestLocation("farm-bench", "queue-bench"),
            AssetReferences(files),
            s3=config,
            hash_cache=hashes,
            check_cache=checks,
        )
    finally:
        hashes.close()
        checks.close()
    return time.perf_counter() - t0, time.process_time() - c0


def s5cmd(url: str, bucket: str, root: Path, scratch: Path, *, flat: bool) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), children_cpu()
    flatten = ["--flatten"] if flat else []  # the tree's file names are unique
    subprocess.run(
        [
            str(BIN / "s5cmd"),
            "--endpoint-url",
            url,
            "cp",
            *flatten,
            f"{root}/*",
            f"s3://{bucket}/copy/",
        ],
        check=True,
        env=env_for(url, scratch),
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0, children_cpu() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path(".bench"))
    ap.add_argument("--tree", choices=sorted(TREES), action="append")
    ap.add_argument("--server", choices=["rclone", "moto"], action="append")
    args = ap.parse_args()
    default_engine()
    print(
        f"{'server':<7} {'tree':<10} {'':>9} {'official s (cpu)':>17} {'jobattach s (cpu)':>18}"
        f" {'s5cmd flat':>14} {'s5cmd tree':>14} {'vs official':>12} {'vs s5cmd':>9}"
    )
    for server_name in args.server or ["rclone", "moto"]:
        for name in args.tree or list(TREES):
            t = tree(args.dir, name)
            read_untimed(t)
            files = [str(t.root / f) for f in t.files]
            with tempfile.TemporaryDirectory(prefix="jobattach-bench-") as tmp:
                scratch = Path(tmp)
                with SERVERS[server_name](scratch) as url:
                    config = config_for(url)
                    for b in ("bench-official", "bench-ours", "bench-s5cmd", "bench-s5cmd-tree"):
                        Bucket(b, config).create()
                    first = (
                        official(url, "bench-official", t.root, scratch),
                        ours(config, "bench-ours", files, scratch),
                        s5cmd(url, "bench-s5cmd", t.root, scratch, flat=True),
                        s5cmd(url, "bench-s5cmd-tree", t.root, scratch, flat=False),
                    )
                    again = (
                        official(url, "bench-official", t.root, scratch),
                        ours(config, "bench-ours", files, scratch),
                    )
            for label, (off, our, *peers) in (("first", first), ("re-upload", again)):
                peer_text = "".join(f" {p[0]:7.2f} ({p[1]:4.1f})" for p in peers) or " " * 30
                vs_s5 = f"{our[0] / peers[0][0]:8.2f}x" if peers else f"{'':>9}"
                print(
                    f"{server_name:<7} {name:<10} {label:>9} {off[0]:9.2f} ({off[1]:5.1f})"
                    f" {our[0]:10.2f} ({our[1]:5.1f}){peer_text} {off[0] / our[0]:11.1f}x {vs_s5}"
                )
            shutil.rmtree(scratch, ignore_errors=True)
    print(
        "vs official = official s / jobattach s (higher is better);"
        " vs s5cmd = jobattach s / s5cmd flat s (lower is better)"
    )


if __name__ == "__main__":
    main()
