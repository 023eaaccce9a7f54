"""Start-up: importing jobattach and running local commands never load boto3 or botocore, which
cost a command a fifth of a second; the S3 commands still load them when they run. ``--version``
starts no wasmtime once the component has told its version, and a command compiles or loads
each of the engine and the kernel once."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import WASM, python_json
from jobattach import S3Config
from jobattach_host import Instance
from jobattach_host.storage import Bucket

#: Runs CLI commands (argv lists as JSON in argv[1]) in a fresh interpreter, then prints the
#: exit statuses, the names of the AWS SDK's modules loaded, the public names that ``dir`` of
#: the (lazily loading) packages left out, and the other costly modules loaded.
_SCRIPT = """
import json, sys
import jobattach, jobattach.cli, jobattach_host
hidden = sorted(
    n for p in (jobattach, jobattach_host) for n in set(p.__all__) - set(dir(p))
)
statuses = []
for argv in json.loads(sys.argv[1]):
    try:
        statuses.append(jobattach.cli.main(argv))
    except SystemExit as e:  # --version and --help end through argparse
        statuses.append(e.code)
sdk = sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "s3transfer"))
costly = sorted(m for m in ("wasmtime", "importlib.metadata") if m in sys.modules)
print(json.dumps({"statuses": statuses, "sdk": sdk, "hidden": hidden, "costly": costly}))
"""

#: Runs CLI commands as ``_SCRIPT`` does, then prints how many times each of the engine
#: component and the kernel module was compiled or loaded from the compile cache.
_COUNTING = """
import collections, json, sys
import wasmtime
from wasmtime import component as wc
import jobattach.cli

made = collections.Counter()
def counted(cls, name, kind):
    original = getattr(cls, name)  # a function, or a bound classmethod
    def call(*args, **kwargs):
        made[kind] += 1
        return original(*args, **kwargs)
    setattr(cls, name, call if name == "__init__" else staticmethod(call))
for cls, kind in ((wasmtime.Module, "kernel"), (wc.Component, "engine")):
    counted(cls, "__init__", kind)
    counted(cls, "deserialize_file", kind)
statuses = [jobattach.cli.main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"statuses": statuses, "made": made}))
"""


def _run(*commands: list[str], script: str = _SCRIPT) -> dict[str, Any]:
    result: dict[str, Any] = python_json(script, json.dumps(commands))
    return result


def _tree(root: Path) -> Path:
    (root / "dir").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a")
    (root / "dir" / "b.bin").write_bytes(b"b" * 3000)
    return root


def test_local_commands_do_not_import_the_aws_sdk(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    a, b = str(tmp_path / "a.json"), str(tmp_path / "b.json")
    (root / "a.txt").write_bytes(b"changed")
    result = _run(
        ["--version"],
        ["--help"],
        ["manifest", "snapshot", str(root), "-o", a],
        ["manifest", "snapshot", str(root), "-o", b, "--no-cache"],
        ["manifest", "diff", a, b],
        ["manifest", "diff", a, "--root", str(root), "--hash"],
        ["manifest", "merge", a, b, "-o", str(tmp_path / "merged.json")],
        ["manifest", "convert", a, "--format", "v2025-12-snapshot", "-o", str(tmp_path / "c")],
        ["hash", str(root / "a.txt")],
    )
    assert result["statuses"] == [0] * 9
    assert (result["sdk"], result["hidden"]) == ([], [])
    assert json.loads(Path(a).read_text())["paths"][0]["path"] == "a.txt"


def test_the_sdk_loads_when_s3_is_used(aws_env: S3Config, tmp_path: Path) -> None:
    Bucket("startup-test", aws_env).create()
    root = _tree(tmp_path / "tree")
    result = _run(
        ["manifest", "snapshot", str(root), "-o", str(tmp_path / "m.json")],
        ["sync", str(root), "s3://startup-test/p", "--json"],
    )
    assert result["statuses"] == [0, 0]
    assert {"boto3", "botocore"} <= set(result["sdk"])
    assert Bucket("startup-test", aws_env).keys("p/") == {"p/a.txt", "p/dir/b.bin"}


def test_version_starts_no_wasmtime_once_the_component_has_told_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBATTACH_CACHE_DIR", str(tmp_path / "cache"))
    first = _run(["--version"])  # starts the component, which tells its version
    assert first["statuses"] == [0]
    assert "wasmtime" in first["costly"]
    # Remembered under the hash of the .wasm that answered, which fixes the answer.
    remembered = (
        tmp_path / "cache" / f"engine-{hashlib.sha256(WASM.read_bytes()).hexdigest()[:32]}.version"
    )
    assert remembered.read_text() == Instance().call("info", "version")
    again = _run(["--version"])
    assert again == {"statuses": [0], "sdk": [], "hidden": [], "costly": []}
    snapshot = ["manifest", "snapshot", str(_tree(tmp_path / "tree")), "-o", str(tmp_path / "m")]
    assert _run(snapshot)["sdk"] == []


def test_a_command_compiles_or_loads_engine_and_kernel_once(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    manifest = str(tmp_path / "m.json")
    commands = (
        ["manifest", "snapshot", str(root), "-o", manifest, "--no-cache"],
        ["manifest", "diff", manifest, "--root", str(root), "--hash"],
        ["hash", str(root / "a.txt")],
    )
    cold = _run(*commands, script=_COUNTING)  # compiles both into this run's compile cache
    assert cold == {"statuses": [0, 0, 0], "made": {"engine": 1, "kernel": 1}}
    assert _run(*commands, script=_COUNTING) == cold  # then loads each from it, once
