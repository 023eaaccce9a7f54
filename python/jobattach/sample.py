"""Deterministic sample trees, for the demo, the benchmarks and the tests."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: Bytes written per ``write`` call when filling large files, to keep memory flat.
_BLOCK = 1 << 20


@dataclass(frozen=True)
class SampleTree:
    root: Path
    #: Root-relative, ``/``-separated paths of every file, in creation order.
    files: list[str]
    total_bytes: int


def make_tree(
    dest: str | os.PathLike[str],
    *,
    count: int,
    min_size: int,
    max_size: int,
    seed: int = 2023_03_03,
    per_dir: int = 100,
    duplicates: int = 0,
) -> SampleTree:
    """Writes ``count`` files of random sizes in ``[min_size, max_size]`` below ``dest``.

    Files are spread over nested directories of ``per_dir`` files; the last ``duplicates``
    files repeat earlier contents, as real jobs share textures. The same arguments always give
    the same tree.
    """
    rng = random.Random(seed)
    root = Path(dest)
    files: list[str] = []
    total = 0
    small: list[bytes] = []  # contents that duplicates may repeat
    for i in range(count):
        rel = f"shot_{i // per_dir // 10:03d}/part_{i // per_dir:04d}/frame_{i:06d}.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            size = rng.randint(min_size, max_size)
            if i >= count - duplicates and small:
                size = f.write(small[rng.randrange(len(small))])
            elif size <= _BLOCK:
                data = rng.randbytes(size)
                small.append(data)
                f.write(data)
            else:
                _write_random(f, rng, size)
        files.append(rel)
        total += size
    return SampleTree(root, files, total)


def _write_random(f: BinaryIO, rng: random.Random, size: int) -> None:
    left = size
    while left > 0:
        left -= f.write(rng.randbytes(min(left, _BLOCK)))
