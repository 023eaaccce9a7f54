"""Byte counts as people read them, in messages and progress lines."""

from __future__ import annotations


def shown_size(n: float, total: float | None = None) -> str:
    """``n`` bytes in a decimal unit (that of ``total`` when given: ``1.2/2.5 GB``)."""
    scale = max(abs(n), abs(total or 0))
    unit, div = "B", 1.0
    for name, size in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("PB", 1e15)):
        if scale >= size:
            unit, div = name, size
    digits = 0 if unit == "B" or scale / div >= 100 else 1
    shown = f"{n / div:.{digits}f}" + (f"/{total / div:.{digits}f}" if total is not None else "")
    return f"{shown} {unit}"
