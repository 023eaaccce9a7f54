"""The worker side: a job's inputs downloaded to files, checked, with exact mtimes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

import jobattach
from conftest import REGION, VECTORS, official_upload
from jobattach import (
    Manifest,
    S3Config,
    S3Location,
    SessionAction,
    StorageError,
    ValidationError,
    sync_inputs,
    sync_outputs,
)
from jobattach_host.storage import Bucket
from jobattach_host.sync import PathMappingRule, session_root_name


@pytest.fixture
def aws(aws_env: S3Config) -> S3Config:
    """The local server's S3 configuration, with boto3's environment pointed at it."""
    return aws_env


@pytest.fixture
def uploaded(aws: S3Config, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """A tree uploaded by the official tools, as a job's inputs: its bucket and attachments."""
    bucket = Bucket(f"sync-{abs(hash(request.node.name)) % 10**8}", aws)
    bucket.create()
    root = tmp_path / "submitted"
    subprocess.run(
        [sys.executable, str(VECTORS / "unicode" / "gen_tree.py"), str(root)], check=True
    )
    inputs = sorted(str(p) for p in root.rglob("*") if p.is_file())
    attachments = official_upload(bucket.name, "JA", inputs, tmp_path, "farm-1", "queue-1")
    return {"bucket": bucket, "root": root, "attachments": attachments.to_dict()}


def test_inputs_land_identical_with_exact_mtimes(
    uploaded: dict[str, Any], aws: S3Config, tmp_path: Path
) -> None:
    session = tmp_path / "session"
    where = S3Location(uploaded["bucket"].name, "JA")
    result = sync_inputs(where, uploaded["attachments"], session, s3=aws)
    root = uploaded["root"]
    dest = session / session_root_name(str(root))
    assert result.roots == {str(root): str(dest)}
    manifest = Manifest.decode((VECTORS / "unicode" / "manifest.json").read_bytes())
    for e in manifest.entries:
        local = dest / e.path
        assert local.read_bytes() == (root / e.path).read_bytes(), e.path
        assert local.stat().st_mtime_ns == (root / e.path).stat().st_mtime_ns // 1000 * 1000
    assert result.processed_files == len(manifest) == result.total_files
    assert not (dest / ".jobattach-staging").exists()

    again = sync_inputs(where, uploaded["attachments"], session, s3=aws)
    assert (again.processed_files, again.skipped_files) == (0, len(manifest))


def test_conflicting_local_files_follow_the_policy(
    uploaded: dict[str, Any], aws: S3Config, tmp_path: Path
) -> None:
    session = tmp_path / "session"
    where = S3Location(uploaded["bucket"].name, "JA")
    sync_inputs(where, uploaded["attachments"], session, s3=aws)
    dest = session / session_root_name(str(uploaded["root"]))
    changed = next(p for p in dest.rglob("*") if p.is_file())
    original = changed.read_bytes()
    changed.write_bytes(b"edited by the artist")

    with pytest.raises(ValidationError, match="local files differ"):
        sync_inputs(where, uploaded["attachments"], session, on_conflict="error", s3=aws)
    assert changed.read_bytes() == b"edited by the artist"
    skipped = sync_inputs(where, uploaded["attachments"], session, on_conflict="skip", s3=aws)
    assert skipped.conflicts == {"skipped": [str(changed)]}
    assert changed.read_bytes() == b"edited by the artist"
    restored = sync_inputs(where, uploaded["attachments"], session, s3=aws)
    assert restored.conflicts == {"overwritten": [str(changed)]}
    assert restored.processed_files == 1
    assert changed.read_bytes() == original


def test_content_that_does_not_match_its_hash_is_never_left_in_place(
    uploaded: dict[str, Any], aws: S3Config, tmp_path: Path
) -> None:
    bucket: Bucket = uploaded["bucket"]
    victim = sorted(k for k in bucket.keys("JA/Data/"))[0]
    bucket.put_bytes(victim, b"tampered")
    with pytest.raises(StorageError, match="does not match its hash") as err:
        sync_inputs(S3Location(bucket.name, "JA"), uploaded["attachments"], tmp_path / "s", s3=aws)
    assert err.value.path == victim
    digest = victim.rsplit("/", 1)[1].split(".")[0]
    manifest = Manifest.decode((VECTORS / "unicode" / "manifest.json").read_bytes())
    dest = tmp_path / "s" / session_root_name(str(uploaded["root"]))
    for e in manifest.entries:
        if e.hash == digest:
            assert not (dest / e.path).exists()
    assert not any(p.name.endswith((".part", ".jobattach-tmp")) for p in dest.rglob("*"))


def test_a_manifest_that_would_escape_is_refused_before_anything_is_written(
    uploaded: dict[str, Any], aws: S3Config, tmp_path: Path
) -> None:
    bucket: Bucket = uploaded["bucket"]
    (props,) = uploaded["attachments"]["manifests"]
    evil = {
        "hashAlg": "xxh128",
        "manifestVersion": "2023-03-03",
        "totalSize": 1,
        "paths": [{"hash": "0" * 32, "mtime": 1, "path": "../../outside.txt", "size": 1}],
    }
    bucket.put_bytes(f"JA/Manifests/{props['inputManifestPath']}", json.dumps(evil).encode())
    session = tmp_path / "session"
    with pytest.raises(ValidationError, match=r"'\.\.' segment"):
        sync_inputs(S3Location(bucket.name, "JA"), uploaded["attachments"], session, s3=aws)
    assert not session.exists() or not any(session.rglob("*"))
    assert not (tmp_path / "outside.txt").exists()


def test_path_mapping_rules_choose_the_destination(
    uploaded: dict[str, Any], aws: S3Config, tmp_path: Path
) -> None:
    mapped = tmp_path / "mapped"
    rules = [PathMappingRule("posix", str(uploaded["root"]), str(mapped))]
    where = S3Location(uploaded["bucket"].name, "JA")
    result = sync_inputs(
        where, uploaded["attachments"], tmp_path / "s", path_mapping_rules=rules, s3=aws
    )
    assert result.roots == {str(uploaded["root"]): str(mapped)}
    assert sorted(p.name for p in mapped.iterdir())
    named = dict(uploaded["attachments"])
    named["manifests"] = [{**m, "fileSystemLocationName": "Show"} for m in named["manifests"]]
    with pytest.raises(ValidationError, match="no path mapping rule"):
        sync_inputs(where, named, tmp_path / "s2", s3=aws)
    with pytest.raises(ValidationError, match="on_conflict must be one of 'overwrite', 'skip'"):
        sync_inputs(where, named, tmp_path / "s3", on_conflict="merge", s3=aws)  # type: ignore[arg-type]


def test_a_symlink_leading_out_is_not_written_through(
    uploaded: dict[str, Any], aws: S3Config, tmp_path: Path
) -> None:
    session = tmp_path / "session"
    dest = session / session_root_name(str(uploaded["root"]))
    outside = tmp_path / "outside"
    outside.mkdir()
    dest.mkdir(parents=True)
    manifest = Manifest.decode((VECTORS / "unicode" / "manifest.json").read_bytes())
    nested = next(e.path for e in manifest.entries if "/" in e.path)
    (dest / nested.split("/")[0]).symlink_to(outside)
    with pytest.raises(ValidationError, match="outside"):
        sync_inputs(
            S3Location(uploaded["bucket"].name, "JA"), uploaded["attachments"], session, s3=aws
        )
    assert list(outside.iterdir()) == []
    assert os.path.islink(dest / nested.split("/")[0])


def test_cli_download(uploaded: dict[str, Any], aws: S3Config, tmp_path: Path) -> None:
    attachments = tmp_path / "attachments.json"
    attachments.write_text(json.dumps(uploaded["attachments"]))
    args = [
        str(Path(sys.executable).parent / "jobattach"),
        "attachments",
        "download",
        "--bucket",
        uploaded["bucket"].name,
        "--root-prefix",
        "JA",
        "--attachments",
        str(attachments),
        "--dest",
        str(tmp_path / "dest"),
    ]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*args, *extra], capture_output=True, text=True, check=False, timeout=300
        )

    out = run("--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["processed_files"] == result["total_files"] > 0
    again = run()
    assert again.returncode == 0, again.stderr
    assert "0 downloaded" in again.stderr
    assert again.stdout.strip() == (
        f"{uploaded['root']} -> {tmp_path / 'dest' / session_root_name(str(uploaded['root']))}"
    )
    # Open Job Description's path mapping rules, as a worker's session has them.
    rules = tmp_path / "rules.json"
    mapped = tmp_path / "mapped"
    rule = {"source_path_format": "POSIX", "source_path": str(uploaded["root"])}
    rules.write_text(
        json.dumps({"path_mapping_rules": [{**rule, "destination_path": str(mapped)}]})
    )
    out = run("--path-mapping-rules", str(rules), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["roots"] == {str(uploaded["root"]): str(mapped)}
    for bad in ([{"source_path": "/x"}], [{**rule, "destination_path": None}]):
        rules.write_text(json.dumps(bad))
        refused = run("--path-mapping-rules", str(rules))
        assert refused.returncode == 1
        assert "source_path_format, source_path and destination_path" in refused.stderr


def test_outputs_go_where_the_official_tools_find_them(
    uploaded: dict[str, Any], aws: S3Config, tmp_path: Path
) -> None:
    from deadline.job_attachments._utils import _float_to_iso_datetime_string
    from deadline.job_attachments.asset_manifests.hash_algorithms import HashAlgorithm, hash_data
    from deadline.job_attachments.download import (
        download_files_from_manifests,
        get_asset_root_and_manifest_from_s3,
    )

    bucket: Bucket = uploaded["bucket"]
    root = str(uploaded["root"])
    attachments = dict(uploaded["attachments"])
    attachments["manifests"] = [
        {**m, "outputRelativeDirectories": ["renders", "emoji \U0001f600"]}
        for m in attachments["manifests"]
    ]
    where = S3Location(bucket.name, "JA")
    session = tmp_path / "session"
    inputs = sync_inputs(where, attachments, session, s3=aws)
    local = Path(inputs.roots[root])
    (local / "renders").mkdir()
    (local / "renders" / "beauty.0001.exr").write_bytes(b"pixels" * 1000)
    (local / "renders" / "deep").mkdir()
    (local / "renders" / "deep" / "z.exr").write_bytes(b"depth")
    touched = local / "emoji \U0001f600" / "inner.txt"  # an input the task rewrote
    touched.write_bytes(b"rewritten by the task")
    action = SessionAction(
        "farm-1",
        "queue-1",
        "job-1",
        "step-1",
        "sessionaction-1-0",
        started=1_700_000_123.4567891,
        task_id="task-1",
    )

    result = sync_outputs(where, attachments, session, action, inputs=inputs, s3=aws)

    assert result.total_files == 3
    expected_prefix = (
        f"JA/Manifests/farm-1/queue-1/job-1/step-1/task-1/"
        f"{_float_to_iso_datetime_string(action.started)}_sessionaction-1-0/"
    )
    name = hash_data(root.encode(), HashAlgorithm.XXH128)
    assert result.manifest_keys == [f"{expected_prefix}{name}_output"]

    session_ = boto3.Session(region_name=REGION)
    asset_root, manifest = get_asset_root_and_manifest_from_s3(
        result.manifest_keys[0], bucket.name, session_
    )
    assert asset_root == root
    head = session_.client("s3").head_object(Bucket=bucket.name, Key=result.manifest_keys[0])
    assert head["ContentType"] == "application/x-deadline-manifest-2023-03-03"
    assert sorted(p.path for p in manifest.paths) == [
        "emoji \U0001f600/inner.txt",
        "renders/beauty.0001.exr",
        "renders/deep/z.exr",
    ]
    elsewhere = tmp_path / "fetched"
    download_files_from_manifests(
        bucket.name, {str(elsewhere): manifest}, "JA/Data", session=session_
    )
    assert (elsewhere / "renders" / "beauty.0001.exr").read_bytes() == b"pixels" * 1000
    assert (elsewhere / "emoji \U0001f600" / "inner.txt").read_bytes() == b"rewritten by the task"

    nothing = sync_outputs(where, attachments, session, action, inputs=inputs, s3=aws)
    assert nothing.processed_files == 0  # the content is there already


@pytest.mark.parametrize(
    ("outputs", "fmt", "picked"),
    [
        (["shot [v2]/r*", "win\\out"], "windows", ["shot [v2]/r*/a.exr", "win/out/b.exr"]),
        (["shot [v2]/r*", "win\\out"], "posix", ["shot [v2]/r*/a.exr"]),
        (["."], "posix", ["shot [v2]/r*/a.exr", "shot v/rX/c.exr", "win/out/b.exr"]),
    ],
    ids=["from Windows", "from POSIX: a backslash is a name's", "the root itself"],
)
def test_output_directories_are_taken_literally(
    uploaded: dict[str, Any],
    aws: S3Config,
    tmp_path: Path,
    outputs: list[str],
    fmt: str,
    picked: list[str],
) -> None:
    root = str(uploaded["root"])
    attachments = dict(uploaded["attachments"])
    attachments["manifests"] = [
        {**m, "outputRelativeDirectories": outputs, "rootPathFormat": fmt}
        for m in attachments["manifests"]
    ]
    where = S3Location(uploaded["bucket"].name, "JA")
    session = tmp_path / "session"
    inputs = sync_inputs(where, attachments, session, s3=aws)
    local = Path(inputs.roots[root])
    for rel in ["shot [v2]/r*/a.exr", "shot v/rX/c.exr", "win/out/b.exr"]:  # c.exr: a decoy
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(rel.encode())
    action = SessionAction("farm-1", "queue-1", "job-1", "step-1", "sa-1", started=1.0)
    result = sync_outputs(where, attachments, session, action, inputs=inputs, s3=aws)
    (key,) = result.manifest_keys
    manifest = jobattach.Manifest.decode(uploaded["bucket"].get_bytes(key)[0])
    assert [e.path for e in manifest.entries] == picked


def test_each_action_of_a_session_sends_only_what_it_wrote(
    uploaded: dict[str, Any], aws: S3Config, tmp_path: Path
) -> None:
    root = str(uploaded["root"])
    attachments = dict(uploaded["attachments"])
    attachments["manifests"] = [
        {**m, "outputRelativeDirectories": ["renders"]} for m in attachments["manifests"]
    ]
    bucket = uploaded["bucket"]
    where = S3Location(bucket.name, "JA")
    session = tmp_path / "session"
    inputs = sync_inputs(where, attachments, session, s3=aws)
    renders = Path(inputs.roots[root]) / "renders"
    renders.mkdir()
    listed = []
    for task in (1, 2, 3):
        (renders / f"frame{task}.exr").write_bytes(b"frame %d" % task)
        action = SessionAction(
            "farm-1", "queue-1", "job-1", "step-1", f"sa-{task}", 1.0 + task, task_id=f"t{task}"
        )
        (key,) = sync_outputs(
            where, attachments, session, action, inputs=inputs, s3=aws
        ).manifest_keys
        listed.append([e.path for e in jobattach.Manifest.decode(bucket.get_bytes(key)[0]).entries])
    assert listed == [["renders/frame1.exr"], ["renders/frame2.exr"], ["renders/frame3.exr"]]


def test_malformed_attachments_and_unwritable_places_are_clear_errors(
    uploaded: dict[str, Any], aws: S3Config, tmp_path: Path
) -> None:
    where = S3Location(uploaded["bucket"].name, "JA")
    action = SessionAction("farm-1", "queue-1", "job-1", "step-1", "sa-1", 1.0)
    malformed: list[Any] = [{"manifests": [{"no": "rootPath"}]}, [], {"manifests": "x"}]
    for bad in malformed:
        with pytest.raises(ValidationError, match="rootPath"):
            sync_inputs(where, bad, tmp_path / "s", s3=aws)
        with pytest.raises(ValidationError, match="rootPath"):
            sync_outputs(where, bad, tmp_path / "s", action, s3=aws)
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(jobattach.FileAccessError, match="cannot write"):
        sync_inputs(where, uploaded["attachments"], tmp_path / "a-file" / "session", s3=aws)
