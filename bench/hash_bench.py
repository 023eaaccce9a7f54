"""Hashing throughput: jobattach (component, host and kernel) against python-xxhash, in one run.

Trees (DESIGN §5): 10,000 files of 1-16 KiB, and 4 files of 256 MiB. Each is read once untimed
so both sides start from a warm page cache; then each side hashes the whole tree, best of
--repeat runs. jobattach hashes a tree with ``hash_files``: the component checks the paths,
the host reads the files straight into the hashing kernel's memory and the kernel (the
engine's xxh3-128 as a core wasm module) hashes them, on one thread per core; the peer reads
each file in 1 MiB blocks into ``xxhash.xxh3_128``, single-threaded, as the official code
does. CPU seconds are printed beside each.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import xxhash

from jobattach import hash_files
from jobattach.sample import SampleTree
from jobattach_host.parallel import hashing_workers
from trees import BLOCK, TREES, read_untimed, tree


def peer_xxhash(t: SampleTree) -> list[str]:
    out = []
    for rel in t.files:
        h = xxhash.xxh3_128()
        with open(t.root / rel, "rb") as f:
            for block in iter(lambda f=f: f.read(BLOCK), b""):  # type: ignore[misc]
                h.update(block)
        out.append(h.hexdigest())
    return out


def warm_up() -> None:
    """Compiles (or loads) the component and the kernel, outside the timings."""
    hash_files(Path(__file__).parent, [Path(__file__).name])


def jobattach(t: SampleTree) -> list[str]:
    return hash_files(t.root, t.files)


def best(
    fn: Callable[[SampleTree], list[str]], t: SampleTree, repeat: int
) -> tuple[float, float, list[str]]:
    """Best wall-clock time of ``repeat`` runs, the CPU seconds of that run, and the digests."""
    runs, result = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn(t)
        runs.append((time.perf_counter() - t0, time.process_time() - c0))
    wall, cpu = min(runs)
    return wall, cpu, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path(".bench"), help="where trees are kept")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tree", choices=sorted(TREES), action="append")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    warm_up()
    print(
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"python {platform.python_version()}, xxhash {xxhash.VERSION}"
    )
    print(
        f"{'tree':<11} {'files':>6} {'MB':>6} {'jobattach MB/s':>15} {'(cpu s)':>8} "
        f"{'xxhash MB/s':>12} {'(cpu s)':>8} {'ratio':>6}"
    )
    for name in args.tree or ["10k-small", "4x256MiB"]:
        t = tree(args.dir, name)
        read_untimed(t)
        ours, ours_cpu, ours_digests = best(jobattach, t, args.repeat)
        peer, peer_cpu, peer_digests = best(peer_xxhash, t, args.repeat)
        if ours_digests != peer_digests:
            raise SystemExit(f"{name}: jobattach's digests differ from xxhash's")
        mb = t.total_bytes / 1e6
        print(
            f"{name:<11} {len(t.files):>6} {mb:>6.0f} {mb / ours:>15.0f} {ours_cpu:>8.2f} "
            f"{mb / peer:>12.0f} {peer_cpu:>8.2f} {peer / ours:>6.2f}"
        )
    print(
        "ratio = jobattach throughput / python-xxhash throughput, wall clock (goal: >= 0.8);"
        f" jobattach uses up to {hashing_workers()} threads, xxhash one"
    )


if __name__ == "__main__":
    main()
