"""Download speed: jobattach's sync_inputs against the official worker's download, in the
same run.

For each tree and each local S3 server, the tree is submitted once (by jobattach; the objects
are the official ones byte for byte), then each side downloads the job's inputs into an empty
directory of its own. Client CPU seconds are printed beside wall time, since the server shares
the machine's two cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from jobattach import (
    AssetReferences,
    ManifestLocation,
    S3Location,
    submit_bundle_attachments,
    sync_inputs,
)
from jobattach_host import default_engine
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.s3config import S3Config
from jobattach_host.storage import Bucket
from servers import OFFICIAL, SERVERS, config_for, env_for, fast_dir
from trees import TREES, read_untimed, tree

HERE = Path(__file__).parent


def submit(config: S3Config, files: list[str], scratch: Path) -> dict[str, Any]:
    result = submit_bundle_attachments(
        "us-east-1",
        S3Location("bench", "JA"),
        ManifestLocation("farm-bench", "queue-bench"),
        AssetReferences(files),
        s3=config,
        hash_cache=HashCache(scratch / "digests.sqlite3"),
        check_cache=S3CheckCache(scratch / "s3.sqlite3"),
    )
    return result.attachments


def official(url: str, attachments: dict[str, Any], dest: Path) -> tuple[float, float]:
    (entry,) = attachments["manifests"]
    key = f"JA/Manifests/{entry['inputManifestPath']}"
    run = subprocess.run(
        [str(OFFICIAL), str(HERE / "official_download.py"), "bench", key, str(dest)],
        capture_output=True,
        text=True,
        check=True,
        env=env_for(url, dest.parent),
    )
    doc = json.loads(run.stdout.strip().splitlines()[-1])
    return float(doc["seconds"]), float(doc["cpu"])


def ours(config: S3Config, attachments: dict[str, Any], dest: Path) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    sync_inputs(S3Location("bench", "JA"), attachments, dest, s3=config)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path(".bench"))
    ap.add_argument("--tree", choices=sorted(TREES), action="append")
    ap.add_argument("--server", choices=sorted(SERVERS), action="append")
    args = ap.parse_args()
    default_engine()
    print(
        f"{'server':<7} {'tree':<10} {'official s (cpu)':>17} {'jobattach s (cpu)':>18}"
        f" {'vs official':>12}"
    )
    for server_name in args.server or ["rclone", "moto"]:
        for name in args.tree or list(TREES):
            t = tree(args.dir, name)
            read_untimed(t)
            with fast_dir() as tmp:
                scratch = Path(tmp)
                with SERVERS[server_name](scratch) as url:
                    config = config_for(url)
                    Bucket("bench", config).create()
                    attachments = submit(config, [str(t.root / f) for f in t.files], scratch)
                    off = official(url, attachments, scratch / "official" / "dest")
                    our = ours(config, attachments, scratch / "ours")
            print(
                f"{server_name:<7} {name:<10} {off[0]:9.2f} ({off[1]:5.1f})"
                f" {our[0]:10.2f} ({our[1]:5.1f}) {off[0] / our[0]:11.1f}x"
            )
    print("vs official = official s / jobattach s (higher is better)")


if __name__ == "__main__":
    main()
