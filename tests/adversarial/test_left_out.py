"""Inputs named on the command line that a submission leaves out (a FIFO, a link to a device,
a socket, a missing file, a name a manifest cannot carry) are each named on stderr, in JSON
with --json (stdout staying the attachments alone), and fail --require-paths-exist."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobattach import Manifest, S3Config
from jobattach_host.storage import Bucket

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and UNIX sockets")


def _upload(bucket: str, *args: str) -> subprocess.CompletedProcess[str]:
    where = ["--bucket", bucket, "--root-prefix", "JA", "--farm-id", "f", "--queue-id", "q"]
    return subprocess.run(
        [str(Path(sys.executable).parent / "jobattach"), "attachments", "upload", *where, *args],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ),  # the fixture pointed boto3's variables at the local server
        timeout=300,
    )


@pytest.fixture
def bucket(aws_env: S3Config, request: pytest.FixtureRequest) -> Bucket:
    b = Bucket(f"ja-left-{abs(hash(request.node.name)) % 10**8}", aws_env)
    b.create()
    return b


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An uploadable file and one input of each kind a submission leaves out, by kind."""
    monkeypatch.chdir(tmp_path)  # a socket's path must be short: bound relative to here
    (tmp_path / "ok.txt").write_text("fine")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "device").symlink_to("/dev/null")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind("sock")
    (tmp_path / "back\\slash.txt").write_text("a legal POSIX name")
    return {
        kind: str(tmp_path / name)
        for kind, name in {
            "ok": "ok.txt",
            "fifo": "fifo",
            "device": "device",
            "socket": "sock",
            "missing": "missing.txt",
            "unportable": "back\\slash.txt",
        }.items()
    }


def _uploaded_paths(attachments: dict[str, Any], bucket: Bucket) -> set[str]:
    """The paths the job's manifests hold, joined to their roots."""
    found = set()
    for m in attachments["manifests"]:
        data, _ = bucket.get_bytes(f"JA/Manifests/{m['inputManifestPath']}")
        found |= {os.path.join(m["rootPath"], e.path) for e in Manifest.decode(data).entries}
    return found


def test_each_input_left_out_is_named_on_stderr(inputs: dict[str, str], bucket: Bucket) -> None:
    run = _upload(bucket.name, "--input", *inputs.values())
    assert run.returncode == 0, run.stderr
    named = {
        line.removeprefix("jobattach: left out ").split(": ")[0]
        for line in run.stderr.splitlines()
        if line.startswith("jobattach: left out ")
    }
    uploaded = _uploaded_paths(json.loads(run.stdout), bucket)
    assert uploaded | named == set(inputs.values())  # nothing silently lost
    assert {inputs[k] for k in ("fifo", "device", "socket", "missing")} <= named
    assert inputs["ok"] in uploaded
    assert "inputs left out (named above)" in run.stderr


def test_json_output_carries_them_on_stderr(inputs: dict[str, str], bucket: Bucket) -> None:
    run = _upload(bucket.name, "--json", "--input", *inputs.values())
    assert run.returncode == 0, run.stderr
    attachments = json.loads(run.stdout)  # the attachments alone, as CreateJob takes them
    assert set(attachments) == {"manifests", "fileSystem"}
    left_out = json.loads(run.stderr.splitlines()[-1])["left_out"]
    assert left_out[inputs["missing"]] == "missing"
    assert left_out[inputs["fifo"]] == left_out[inputs["socket"]] == "special-file"
    assert left_out[inputs["device"]] == "symlink-outside-root"
    uploaded = _uploaded_paths(attachments, bucket)
    assert uploaded | set(left_out) == set(inputs.values())


def test_require_paths_exist_fails_naming_each(inputs: dict[str, str], bucket: Bucket) -> None:
    special = [inputs[k] for k in ("ok", "fifo", "device", "socket")]
    run = _upload(bucket.name, "--require-paths-exist", "--input", *special)
    assert run.returncode == 1
    for path in special[1:]:
        assert path in run.stderr
    assert inputs["ok"] not in run.stderr
    missing = _upload(
        bucket.name, "--require-paths-exist", "--input", inputs["ok"], inputs["missing"]
    )
    assert missing.returncode == 1
    assert inputs["missing"] in missing.stderr
    assert bucket.keys("JA/") == set()  # refused before anything was sent
