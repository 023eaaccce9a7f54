"""The benchmark trees (DESIGN §5), made once under .bench/ and reused by later runs."""

from __future__ import annotations

import json
from pathlib import Path

from jobattach.sample import SampleTree, make_tree

BLOCK = 1 << 20
TREES: dict[str, dict[str, int]] = {
    "10k-small": {"count": 10_000, "min_size": 1 << 10, "max_size": 16 << 10},
    "4x256MiB": {"count": 4, "min_size": 256 << 20, "max_size": 256 << 20},
    "2k-mixed": {"count": 2_000, "min_size": 1 << 10, "max_size": 860 << 10},
}


def tree(base: Path, name: str) -> SampleTree:
    """Makes the tree once; later runs reuse it (a stamp records how it was made)."""
    spec = TREES[name]
    root, stamp = base / name, base / f"{name}.json"
    if stamp.is_file() and json.loads(stamp.read_text())["spec"] == spec:
        meta = json.loads(stamp.read_text())
        return SampleTree(root, meta["files"], meta["total_bytes"])
    t = make_tree(root, **spec)
    stamp.write_text(json.dumps({"spec": spec, "files": t.files, "total_bytes": t.total_bytes}))
    return t


def read_untimed(t: SampleTree) -> None:
    """Reads every file once, so timed runs start from a warm page cache."""
    for rel in t.files:
        with open(t.root / rel, "rb") as f:
            while f.read(BLOCK):
                pass
