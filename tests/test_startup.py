"""Start-up: importing jobattach and running local commands never load boto3 or botocore, which
cost a command a fifth of a second; the S3 commands still load them when they run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from jobattach import S3Config
from jobattach_host.storage import Bucket

#: Runs CLI commands (argv lists as JSON in argv[1]) in a fresh interpreter, then prints the
#: exit statuses, the names of the AWS SDK's modules loaded, and the public names that ``dir``
#: of the (lazily loading) packages left out.
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
print(json.dumps({"statuses": statuses, "sdk": sdk, "hidden": hidden}))
"""


def _run(*commands: list[str]) -> dict[str, list[object]]:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(commands)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, list[object]] = json.loads(out.stdout.splitlines()[-1])
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
    assert result == {"statuses": [0] * 9, "sdk": [], "hidden": []}
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
