"""Hatch build hook: refuse to build a wheel without the engine component and kernel inside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        for name in ("jobattach.wasm", "kernel.wasm"):
            wasm = Path(self.root) / "host" / "jobattach_host" / name
            if self.target_name == "wheel" and version != "editable" and not wasm.is_file():
                raise RuntimeError(f"{wasm} is missing: run `just build` before building a wheel")
        build_data["pure_python"] = True
