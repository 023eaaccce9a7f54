"""The built component is valid and implements exactly the world described in wit/."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ROOT, WASM, wasm_tools


def _world_lines(wit_text: str, verb: str) -> set[str]:
    world = wit_text.split("world root {", 1)[1].split("}", 1)[0]
    return set(re.findall(rf"^\s*{verb} ([^;]+);", world, re.MULTILINE))


def _package_block(wit_text: str, package: str) -> str:
    start = wit_text.index(f"package {package} {{")
    end = wit_text.index("\n}\n", start)
    return wit_text[start:end]


def _wit_of(component: Path) -> str:
    out = wasm_tools("component", "wit", str(component))
    assert out.returncode == 0, out.stderr
    return out.stdout


def _reference_component(tmp_path: Path) -> Path:
    """A component generated from wit/ alone: every import and export the world declares."""
    core, comp = tmp_path / "dummy.core.wasm", tmp_path / "dummy.wasm"
    embed = wasm_tools(
        "component", "embed", "--dummy", "--world", "engine", str(ROOT / "wit"), "-o", str(core)
    )
    assert embed.returncode == 0, embed.stderr
    new = wasm_tools("component", "new", str(core), "-o", str(comp))
    assert new.returncode == 0, new.stderr
    return comp


def test_component_validates() -> None:
    out = wasm_tools("validate", str(WASM))
    assert out.returncode == 0, out.stderr


def test_component_targets_the_engine_world() -> None:
    out = wasm_tools("component", "targets", "--world", "engine", str(ROOT / "wit"), str(WASM))
    assert out.returncode == 0, out.stderr


def test_exports_are_exactly_the_worlds(tmp_path: Path) -> None:
    ours, reference = _wit_of(WASM), _wit_of(_reference_component(tmp_path))
    assert _world_lines(ours, "export") == _world_lines(reference, "export")
    assert _world_lines(ours, "export") == {
        "jobattach:engine/types@0.1.0",
        "jobattach:engine/info@0.1.0",
        "jobattach:engine/hashing@0.1.0",
        "jobattach:engine/manifest@0.1.0",
        "jobattach:engine/snapshot@0.1.0",
        "jobattach:engine/submit@0.1.0",
        "jobattach:engine/sync@0.1.0",
        "jobattach:engine/download@0.1.0",
        "jobattach:engine/mount@0.1.0",
    }
    # Every exported type and function, with its signature, is the one wit/ declares.
    package = "jobattach:engine@0.1.0"
    assert _package_block(ours, package) == _package_block(reference, package)


def test_imports_are_only_those_the_world_grants(tmp_path: Path) -> None:
    ours = _world_lines(_wit_of(WASM), "import")
    allowed = _world_lines(_wit_of(_reference_component(tmp_path)), "import")
    assert ours <= allowed, f"imports not in wit/: {ours - allowed}"
    # The capabilities the engine needs are the filesystem ones, and nothing else.
    assert {"wasi:filesystem/preopens@0.2.12", "wasi:filesystem/types@0.2.12"} <= ours
    assert not any(i.startswith(("wasi:sockets", "wasi:http", "wasi:cli")) for i in ours)


def test_the_wit_names_no_host_runtime() -> None:
    for path in sorted((ROOT / "wit").glob("*.wit")):
        wit = path.read_text().lower()
        for runtime in ("wasmtime", "c api", "python", "jco", "node"):
            assert runtime not in wit, f"{path.name} names {runtime!r}: say the cost neutrally"


def test_only_the_engine_layer_calls_the_component() -> None:
    callers = sorted(
        str(path.relative_to(ROOT))
        for tree in ("host", "python")
        for path in (ROOT / tree).rglob("*.py")
        if re.search(r"\.call\(\s*\"", path.read_text())
    )
    assert callers == ["host/jobattach_host/engine.py"]
