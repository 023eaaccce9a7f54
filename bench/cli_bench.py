"""The command line as users meet it: whole processes, jobattach against the official CLI.

On the 10,000-file tree (made once under .bench/, read once untimed) each pair runs
`deadline manifest snapshot` (the official CLI, from .bench/venv-official, made by
`just bench-env`) and then `jobattach manifest snapshot`, back to back, each with an empty hash
cache: a fresh HOME for the official one (its cache is ~/.deadline/cache), a fresh
JOBATTACH_CACHE_DIR for ours holding only the compiled engine and kernel, made once untimed
(each side also runs once untimed first, so that both start as an installed command does:
Python's bytecode cached, whatever PYTHONDONTWRITEBYTECODE says here).
Both manifests must be byte-identical, or the run fails. Then `jobattach --version` against
`python -c "import wasmtime"` in the same environment, in turns. Medians throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trees import read_untimed, tree

BIN = Path(sys.executable).parent
OFFICIAL_CLI = Path(".bench/venv-official/bin/deadline")
#: The environment users run commands in: Python writes and reuses its bytecode caches.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds the process ``argv`` took from start to exit, and what it printed."""
    t0 = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({run.returncode}):\n{run.stderr}")
    return seconds, run.stdout


def official(root: Path, scratch: Path) -> tuple[float, bytes]:
    home, out = scratch / "official-home", scratch / "official-out"
    for d in (home, out):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    argv = [str(OFFICIAL_CLI), "manifest", "snapshot", "--root", str(root), "-d", str(out)]
    seconds, stdout = timed([*argv, "-n", "bench", "--json"], {**ENV, "HOME": str(home)})
    manifest = json.loads(stdout.strip().splitlines()[-1])["manifest"]
    return seconds, Path(manifest).read_bytes()


def ours(root: Path, scratch: Path, compiled: Path) -> tuple[float, bytes]:
    cache, out = scratch / "jobattach-cache", scratch / "jobattach.manifest"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(compiled, cache)  # the compiled engine and kernel, no digests
    env = {**ENV, "JOBATTACH_CACHE_DIR": str(cache)}
    argv = [str(BIN / "jobattach"), "manifest", "snapshot", str(root), "-o", str(out)]
    seconds, _ = timed(argv, env)
    return seconds, out.read_bytes()


def compile_once(scratch: Path) -> Path:
    """A cache directory holding the compiled engine and kernel and nothing else."""
    compiled, sample = scratch / "compiled", scratch / "sample"
    sample.mkdir()
    (sample / "a.txt").write_bytes(b"a")
    env = {**ENV, "JOBATTACH_CACHE_DIR": str(compiled)}
    timed([str(BIN / "jobattach"), "manifest", "snapshot", str(sample), "--no-cache"], env)
    for f in compiled.iterdir():
        if f.suffix != ".cwasm":
            f.unlink()
    return compiled


def start_up(runs: int) -> tuple[float, float]:
    """Median seconds of ``jobattach --version`` and of ``python -c "import wasmtime"``."""
    ours_s, theirs_s = [], []
    timed([str(BIN / "jobattach"), "--version"], ENV)  # the component tells its version once
    for _ in range(runs):
        ours_s.append(timed([str(BIN / "jobattach"), "--version"], ENV)[0])
        theirs_s.append(timed([sys.executable, "-c", "import wasmtime"], ENV)[0])
    return statistics.median(ours_s), statistics.median(theirs_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path(".bench"))
    ap.add_argument("--pairs", type=int, default=5, help="back-to-back pairs (at least 4)")
    args = ap.parse_args()
    if not OFFICIAL_CLI.is_file():
        raise SystemExit(f"{OFFICIAL_CLI} is missing: run `just bench-env`")
    t = tree(args.dir, "10k-small")
    read_untimed(t)
    off_s, our_s = [], []
    with tempfile.TemporaryDirectory(prefix="jobattach-bench-") as tmp:
        scratch = Path(tmp)
        compiled = compile_once(scratch)
        official(t.root, scratch)  # untimed: each side's modules and bytecode are cached
        ours(t.root, scratch, compiled)
        for _ in range(max(args.pairs, 4)):
            off, off_bytes = official(t.root, scratch)
            our, our_bytes = ours(t.root, scratch, compiled)
            if off_bytes != our_bytes:
                raise SystemExit("the manifests differ from the official one")
            off_s.append(off)
            our_s.append(our)
    off, our = statistics.median(off_s), statistics.median(our_s)
    version, wasmtime = start_up(runs=15)
    rows = (
        ("manifest snapshot, 10k-small, cold", off, our, f"{off / our:.1f}x"),
        ("--version vs import wasmtime", wasmtime, version, f"{version / wasmtime:.2f}x"),
    )
    print(f"{'command (whole process)':<36} {'peer s':>8} {'jobattach s':>12} {'ratio':>7}")
    for label, peer, mine, ratio in rows:
        print(f"{label:<36} {peer:>8.3f} {mine:>12.3f} {ratio:>7}")
    print(
        f"snapshot: medians of {len(off_s)} back-to-back pairs, speed-up = deadline seconds /"
        " jobattach seconds, manifests byte-identical; --version: medians of 15 runs each,"
        " ratio = jobattach seconds / python -c 'import wasmtime' seconds"
    )


if __name__ == "__main__":
    main()
