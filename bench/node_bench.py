"""The Node host beside the Python host: hashing throughput, and the CLI's start-up time.

Hashing: on the trees of hash_bench.py (10,000 files of 1-16 KiB, and 4 files of 256 MiB),
each read once untimed, the Node host's ``hashFiles`` is timed inside one node process (the
component instantiated first, untimed), the Python host's ``jobattach.hash_files`` inside this
one, and python-xxhash reads each file in 1 MiB blocks; best of --repeat runs each, with the
CPU seconds of that run. Start-up: ``node bin/jobattach-engine.mjs --version`` against
``node -e 0``, the median wall time of --runs runs each. Needs the package built
(``./just node``).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import xxhash

from hash_bench import best, jobattach, peer_xxhash, warm_up
from jobattach.sample import SampleTree
from trees import TREES, read_untimed, tree

NODE_HOST = Path(__file__).resolve().parents[1] / "host" / "node"

# Times hashFiles over the paths on stdin, best of `repeat`; prints the runs and the digests.
NODE_SCRIPT = """
import { readFileSync } from "node:fs";
import { hashFiles } from %s;
const [root, repeat] = process.argv.slice(1);
const paths = JSON.parse(readFileSync(0, "utf8"));
hashFiles(root, []); // instantiates the component
const runs = [];
let digests = [];
for (let i = 0; i < Number(repeat); i++) {
  const c0 = process.cpuUsage(), t0 = performance.now();
  digests = hashFiles(root, paths);
  const wall = (performance.now() - t0) / 1e3, cpu = process.cpuUsage(c0);
  runs.push([wall, (cpu.user + cpu.system) / 1e6]);
}
process.stdout.write(JSON.stringify({ runs, digests }));
"""


def node_hash(node: str, t: SampleTree, repeat: int) -> tuple[float, float, list[str]]:
    """Best wall time of ``repeat`` runs of the Node host's ``hashFiles``, its CPU seconds and
    the digests."""
    script = NODE_SCRIPT % json.dumps((NODE_HOST / "dist" / "index.js").as_uri())
    out = subprocess.run(
        [node, "--input-type=module", "-e", script, str(t.root), str(repeat)],
        input=json.dumps(t.files).encode(),
        capture_output=True,
        check=True,
    )
    doc = json.loads(out.stdout)
    wall, cpu = min(doc["runs"])
    return wall, cpu, doc["digests"]


def median_ms(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path(".bench"), help="where trees are kept")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20, help="runs of each start-up command")
    ap.add_argument("--tree", choices=sorted(TREES), action="append")
    args = ap.parse_args()
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not on PATH: install Node.js 20 or newer")
    if not (NODE_HOST / "dist" / "index.js").is_file():
        raise SystemExit(f"{NODE_HOST / 'dist'} is missing: build the package with ./just node")
    args.dir.mkdir(parents=True, exist_ok=True)
    warm_up()
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, node "
        f"{version.stdout.strip()}, python {platform.python_version()}, xxhash {xxhash.VERSION}"
    )
    print(
        f"{'tree':<11} {'files':>6} {'MB':>6} {'node MB/s':>10} {'(cpu s)':>8} "
        f"{'python MB/s':>12} {'(cpu s)':>8} {'xxhash MB/s':>12} {'(cpu s)':>8} "
        f"{'node/python':>12} {'node/xxhash':>12}"
    )
    for name in args.tree or ["10k-small", "4x256MiB"]:
        t = tree(args.dir, name)
        read_untimed(t)
        ours, ours_cpu, ours_digests = node_hash(node, t, args.repeat)
        host, host_cpu, host_digests = best(jobattach, t, args.repeat)
        peer, peer_cpu, peer_digests = best(peer_xxhash, t, args.repeat)
        if not ours_digests == host_digests == peer_digests:
            raise SystemExit(f"{name}: the hosts' and xxhash's digests differ")
        mb = t.total_bytes / 1e6
        print(
            f"{name:<11} {len(t.files):>6} {mb:>6.0f} {mb / ours:>10.0f} {ours_cpu:>8.2f} "
            f"{mb / host:>12.0f} {host_cpu:>8.2f} {mb / peer:>12.0f} {peer_cpu:>8.2f} "
            f"{host / ours:>12.2f} {peer / ours:>12.2f}"
        )
    print(
        "node/python and node/xxhash = throughput ratios, wall clock (goal: node/python >= 1);"
        " both read files straight into the hashing kernel's memory; the Node host hashes on"
        " its one thread, the Python host on threads"
    )
    cli = median_ms([node, str(NODE_HOST / "bin" / "jobattach-engine.mjs"), "--version"], args.runs)
    bare = median_ms([node, "-e", "0"], args.runs)
    print(
        f"start-up, median of {args.runs}: jobattach-engine --version {cli:.1f} ms, "
        f"node -e 0 {bare:.1f} ms, ratio {cli / bare:.2f} (goal: < 2)"
    )


if __name__ == "__main__":
    main()
