"""The manifest store: ``manifest upload`` puts a manifest where the official tools read it,
``manifest download`` writes a job's input and output manifests, against the local S3 server
and the official package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from conftest import REGION, official_upload
from jobattach import (
    Manifest,
    ManifestKind,
    S3Config,
    S3Location,
    SessionAction,
    StorageError,
    ValidationError,
    create_manifest,
    download_job_outputs,
    download_manifests,
    merge_manifests,
    sync_inputs,
    sync_outputs,
    upload_manifest,
)
from jobattach_host.engine import downloaded_manifest_name
from jobattach_host.storage import Bucket
from jobattach_host.sync import layout

DATA = layout("JA")
IDS = ("farm-1", "queue-1", "job-1")


def _bucket(aws: S3Config, name: str) -> Bucket:
    bucket = Bucket(f"store-{abs(hash(name)) % 10**8}", aws)
    bucket.create()
    return bucket


def _tree(top: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_bytes(data)
    return top


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "jobattach.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, env=os.environ.copy())


def _download_cli(job: Job, *args: str) -> subprocess.CompletedProcess[str]:
    """``manifest download`` of the job's manifests, with ``args``."""
    ids = ["--farm-id", IDS[0], "--queue-id", IDS[1], "--job-id", IDS[2]]
    where = ["--bucket", job.bucket.name, "--root-prefix", "JA"]
    return _cli("manifest", "download", *where, *ids, *args)


# --- upload ---------------------------------------------------------------------------------


def test_an_upload_goes_where_the_official_upload_puts_it_and_reads_back_officially(
    aws_env: S3Config, tmp_path: Path
) -> None:
    from deadline.job_attachments.api.manifest import _manifest_upload
    from deadline.job_attachments.download import get_asset_root_and_manifest_from_s3

    bucket = _bucket(aws_env, "official-key")
    root = _tree(tmp_path / "caf\u00e9 shot", {"a.txt": b"alpha", "sub/b.bin": b"beta"})
    manifest = create_manifest(root, cache=False).manifest
    file = tmp_path / "shot_input"
    file.write_bytes(manifest.encode())
    prefix = "farm-1/queue-1/Inputs/0123abcd"
    session = boto3.Session(region_name=REGION)
    _manifest_upload(str(file), bucket.name, "OFFICIAL", session, s3_key_prefix=prefix)

    r = upload_manifest(file, S3Location(bucket.name, "JA"), prefix=prefix, root=str(root))

    official_keys = bucket.keys("OFFICIAL/")
    assert official_keys == {f"OFFICIAL/Manifests/{prefix}/shot_input"}
    assert r.key == f"JA/Manifests/{prefix}/shot_input"
    assert r.manifest_path == f"{prefix}/shot_input"
    assert (r.hash, r.size, r.outcome) == (manifest.hash(), len(manifest.encode()), "uploaded")
    assert bucket.get_bytes(r.key)[0] == bucket.get_bytes(official_keys.pop())[0]

    asset_root, read = get_asset_root_and_manifest_from_s3(r.key, bucket.name, session)
    assert asset_root == str(root)  # the official reader decodes asset-root-json
    assert read.encode().encode() == manifest.encode()
    head = session.client("s3").head_object(Bucket=bucket.name, Key=r.key)
    assert head["ContentType"] == "application/x-deadline-manifest-2023-03-03"
    assert head["Metadata"] == r.metadata
    assert json.loads(head["Metadata"]["asset-root-json"]) == str(root)
    # The official's own metadata, as it sets it: the file's path as given.
    theirs = session.client("s3").head_object(
        Bucket=bucket.name, Key=f"OFFICIAL/Manifests/{prefix}/shot_input"
    )["Metadata"]
    assert head["Metadata"]["file-system-location-name"] == theirs["file-system-location-name"]


def test_an_uploaded_manifest_is_a_job_input_the_official_download_fetches(
    aws_env: S3Config, tmp_path: Path
) -> None:
    from deadline.job_attachments.download import (
        download_files_from_manifests,
        get_manifest_from_s3,
    )

    bucket = _bucket(aws_env, "official-download")
    files = {"scene.ma": b"scene" * 100, "tex/wood.png": b"wood"}
    root = _tree(tmp_path / "src", files)
    manifest = create_manifest(root, cache=False).manifest
    for e in manifest.entries:
        assert e.hash is not None
        bucket.put_bytes(DATA.data_key(e.hash), (root / e.path).read_bytes())
    file = tmp_path / "src.manifest"
    file.write_bytes(manifest.encode())
    r = upload_manifest(file, S3Location(bucket.name, "JA"), prefix="farm-1/queue-1/Inputs/9")

    session = boto3.Session(region_name=REGION)
    official = get_manifest_from_s3(r.key, bucket.name, session)
    fetched = tmp_path / "fetched"
    download_files_from_manifests(bucket.name, {str(fetched): official}, "JA/Data", session=session)
    assert {
        p.relative_to(fetched).as_posix(): p.read_bytes() for p in fetched.rglob("*") if p.is_file()
    } == files

    # And ours, from attachments naming it as CreateJob would.
    attachments = {
        "manifests": [
            {
                "rootPath": str(root),
                "rootPathFormat": "posix",
                "inputManifestPath": r.manifest_path,
                "inputManifestHash": r.hash,
            }
        ],
        "fileSystem": "COPIED",
    }
    got = sync_inputs(S3Location(bucket.name, "JA"), attachments, tmp_path / "session", s3=aws_env)
    assert got.processed_files == len(files)


def test_an_upload_never_replaces_another_manifest_unasked(
    aws_env: S3Config, tmp_path: Path
) -> None:
    bucket = _bucket(aws_env, "replace")
    where = S3Location(bucket.name, "JA")
    file = tmp_path / "m_input"
    first = Manifest.decode(
        b'{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[],"totalSize":0}'
    )
    file.write_bytes(first.encode())
    assert upload_manifest(file, where, root="/r", s3=aws_env).outcome == "uploaded"
    assert upload_manifest(file, where, root="/r", s3=aws_env).outcome == "unchanged"

    other = create_manifest(_tree(tmp_path / "t", {"x": b"x"}), cache=False).manifest
    file.write_bytes(other.encode())
    with pytest.raises(StorageError, match="another manifest") as e:
        upload_manifest(file, where, root="/r", s3=aws_env)
    assert e.value.path == f"s3://{bucket.name}/JA/Manifests/m_input"
    assert bucket.get_bytes("JA/Manifests/m_input")[0] == first.encode()
    with pytest.raises(StorageError, match="another manifest"):  # other metadata is other
        upload_manifest(tmp_path / "m_input", where, root="/elsewhere", s3=aws_env)

    r = upload_manifest(file, where, root="/r", overwrite=True, s3=aws_env)
    assert r.outcome == "uploaded"
    assert bucket.get_bytes(r.key)[0] == other.encode()


def test_an_upload_refuses_what_is_no_manifest_or_no_key(aws_env: S3Config, tmp_path: Path) -> None:
    bucket = _bucket(aws_env, "refused")
    where = S3Location(bucket.name, "JA")
    bad = tmp_path / "bad_input"
    bad.write_bytes(b'{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{"path":"../x"')
    with pytest.raises(ValidationError) as e:
        upload_manifest(bad, where, s3=aws_env)
    assert e.value.path == str(bad)
    good = tmp_path / "good_input"
    good.write_bytes(Manifest.from_entries([]).encode())
    with pytest.raises(ValidationError, match="segment"):
        upload_manifest(good, where, prefix="a/../b", s3=aws_env)
    assert bucket.keys("") == set()

    run = _cli(
        "manifest",
        "upload",
        str(tmp_path / "missing"),
        "--bucket",
        bucket.name,
        "--root-prefix",
        "JA",
    )
    assert run.returncode == 1
    assert "cannot read manifest" in run.stderr


def test_cli_upload_json(aws_env: S3Config, tmp_path: Path) -> None:
    bucket = _bucket(aws_env, "cli-upload")
    manifest = create_manifest(_tree(tmp_path / "t", {"f": b"f"}), cache=False).manifest
    file = tmp_path / "t_input"
    file.write_bytes(manifest.encode())
    run = _cli(
        "manifest",
        "upload",
        str(file),
        "--bucket",
        bucket.name,
        "--root-prefix",
        "JA",
        "--prefix",
        "farm-1/queue-1/Inputs/7",
        "--root",
        "/show/t",
        "--file-system-location",
        "Show",
        "--json",
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["key"] == "JA/Manifests/farm-1/queue-1/Inputs/7/t_input"
    assert out["manifest_path"] == "farm-1/queue-1/Inputs/7/t_input"
    assert out["hash"] == manifest.hash()
    assert out["metadata"] == {"asset-root": "/show/t", "file-system-location-name": "Show"}
    assert bucket.metadata(out["key"]) == out["metadata"]


# --- download -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    where: S3Location
    bucket: Bucket
    root: str
    attachments: dict[str, Any]
    #: The job's input manifest, as the official submission wrote it.
    inputs: Manifest


def _action(step: str, task: str, n: int, started: float) -> SessionAction:
    return SessionAction(*IDS, step, f"sessionaction-{n}", started, task_id=task)


@pytest.fixture
def job(aws_env: S3Config, tmp_path: Path, request: pytest.FixtureRequest) -> Job:
    """A job submitted by the official tools, whose task-1 ran twice (the second run wins),
    task-2 once, and whose step-2 has no tasks."""
    bucket = _bucket(aws_env, request.node.name)
    root = _tree(tmp_path / "show" / "shot", {"scene.ma": b"scene", "tex/a.png": b"png"})
    inputs = sorted(str(p) for p in root.rglob("*") if p.is_file())
    official = official_upload(bucket.name, "JA", inputs, tmp_path, *IDS[:2])
    attachments = official.to_dict()
    attachments["manifests"][0]["outputRelativeDirectories"] = ["renders"]
    where = S3Location(bucket.name, "JA")
    runs = [
        (_action("step-1", "task-1", 1, 1_700_000_000.0), {"renders/f1.exr": b"first try"}),
        (_action("step-1", "task-1", 2, 1_700_000_200.0), {"renders/f1.exr": b"second try"}),
        (_action("step-1", "task-2", 3, 1_700_000_100.0), {"renders/f2.exr": b"task two"}),
        (_action("step-2", "", 4, 1_700_000_050.0), {"renders/c/a.exr": b"chunk a"}),
    ]
    for i, (act, files) in enumerate(runs):
        session = tmp_path / f"session-{i}"
        got = sync_inputs(where, attachments, session, s3=aws_env)
        _tree(Path(got.roots[str(root)]), files)
        sync_outputs(where, attachments, session, act, inputs=got, s3=aws_env)
    key = DATA.manifests_prefix + attachments["manifests"][0]["inputManifestPath"]
    first = Manifest.decode(bucket.get_bytes(key)[0])
    return Job(where, bucket, str(root), attachments, first)


def _outputs(job: Job, tmp_path: Path, aws: S3Config, step: str = "", task: str = "") -> Manifest:
    """The root's merged output manifest as the output download reads it."""
    got = download_job_outputs(
        job.where, *IDS, tmp_path / "outputs", step_id=step, task_id=task, s3=aws
    )
    return got.manifests[job.root]


@pytest.mark.parametrize("kind", ["input", "output", "all"])
def test_each_kind_writes_the_roots_merged_manifest(
    job: Job, aws_env: S3Config, tmp_path: Path, kind: ManifestKind
) -> None:
    out = tmp_path / "manifests"
    r = download_manifests(job.where, *IDS, out, attachments=job.attachments, kind=kind, s3=aws_env)
    outputs = _outputs(job, tmp_path, aws_env)
    expected = {
        "input": job.inputs,
        "output": outputs,
        "all": merge_manifests([job.inputs, outputs]),
    }[kind]
    [d] = r.downloaded
    assert d.manifest_root == job.root
    assert d.local_manifest_path == str(out / downloaded_manifest_name(job.root))
    assert d.outcome == "written"
    assert Path(d.local_manifest_path).read_bytes() == expected.encode()
    assert os.listdir(out) == [downloaded_manifest_name(job.root)]  # no temporary left
    input_key = DATA.manifests_prefix + job.attachments["manifests"][0]["inputManifestPath"]
    assert (input_key in d.manifest_keys) == (kind != "output")
    assert len(d.manifest_keys) == {"input": 1, "output": 3, "all": 4}[kind]


def test_the_same_manifests_as_the_official_manifest_download(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    from deadline.job_attachments.api.manifest import _manifest_download
    from deadline.job_attachments.models import AssetType, JobAttachmentS3Settings

    class OnlyGetJob:  # the Deadline Cloud API's one answer the official download needs
        def get_job(self, **ids: str) -> dict[str, Any]:
            assert ids == {"farmId": IDS[0], "queueId": IDS[1], "jobId": IDS[2]}
            return {"attachments": job.attachments}

    for step in ["", "step-1", "step-2"]:
        theirs, ours = tmp_path / f"official-{step}", tmp_path / f"ours-{step}"
        theirs.mkdir()
        official = _manifest_download(
            deadline_client=OnlyGetJob(),  # type: ignore[arg-type]
            download_dir=str(theirs),
            farm_id=IDS[0],
            queue_id=IDS[1],
            job_id=IDS[2],
            queue_role_session=boto3.Session(region_name=REGION),
            queue_s3_settings=JobAttachmentS3Settings(
                s3BucketName=job.bucket.name, rootPrefix="JA"
            ),
            asset_type=AssetType.OUTPUT if step else AssetType.ALL,
            step_id=step or None,
        )
        kind: ManifestKind = "output" if step else "all"
        r = download_manifests(
            job.where, *IDS, ours, attachments=job.attachments, kind=kind, step_id=step, s3=aws_env
        )
        [o] = official.downloaded
        [d] = r.downloaded
        assert o.manifest_root == d.manifest_root == job.root
        # Their name is ours with the time of the download before its extension.
        assert Path(o.local_manifest_path).name.startswith(Path(d.local_manifest_path).stem)
        assert (
            Path(o.local_manifest_path).read_bytes() == Path(d.local_manifest_path).read_bytes()
        ), step


def test_a_task_alone_and_a_step_without_tasks(job: Job, aws_env: S3Config, tmp_path: Path) -> None:
    r = download_manifests(
        job.where,
        *IDS,
        tmp_path / "t",
        kind="output",
        step_id="step-1",
        task_id="task-1",
        s3=aws_env,
    )
    [d] = r.downloaded
    manifest = Manifest.decode(Path(d.local_manifest_path).read_bytes())
    assert [e.path for e in manifest.entries] == ["renders/f1.exr"]
    assert len(d.manifest_keys) == 1
    assert "_sessionaction-2/" in d.manifest_keys[0]
    assert manifest == _outputs(job, tmp_path, aws_env, "step-1", "task-1")

    step = download_manifests(job.where, *IDS, tmp_path / "s", kind="output", step_id="step-2")
    [d] = step.downloaded
    manifest = Manifest.decode(Path(d.local_manifest_path).read_bytes())
    assert [e.path for e in manifest.entries] == ["renders/c/a.exr"]


def test_a_second_download_finds_its_file_and_a_different_one_is_said_replaced(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    out = tmp_path / "m"
    first = download_manifests(job.where, *IDS, out, attachments=job.attachments, s3=aws_env)
    path = Path(first.downloaded[0].local_manifest_path)
    again = download_manifests(job.where, *IDS, out, attachments=job.attachments, s3=aws_env)
    assert again.downloaded[0].outcome == "unchanged"

    path.write_bytes(b"someone else's notes")
    with pytest.raises(ValidationError, match="nothing was written") as e:
        download_manifests(
            job.where, *IDS, out, attachments=job.attachments, on_conflict="error", s3=aws_env
        )
    assert str(path) in str(e.value)
    assert path.read_bytes() == b"someone else's notes"
    skipped = download_manifests(
        job.where, *IDS, out, attachments=job.attachments, on_conflict="skip", s3=aws_env
    )
    assert skipped.downloaded[0].outcome == "skipped"
    assert path.read_bytes() == b"someone else's notes"
    replaced = download_manifests(job.where, *IDS, out, attachments=job.attachments, s3=aws_env)
    assert replaced.downloaded[0].outcome == "overwritten"
    assert Manifest.decode(path.read_bytes()) == Manifest.decode(
        Path(first.downloaded[0].local_manifest_path).read_bytes()
    )


def test_a_symlink_at_the_name_is_replaced_never_written_through(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    out = tmp_path / "m"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    link = out / downloaded_manifest_name(job.root)
    link.symlink_to(victim)
    r = download_manifests(job.where, *IDS, out, attachments=job.attachments, s3=aws_env)
    assert r.downloaded[0].outcome == "overwritten"
    assert victim.read_bytes() == b"precious"
    assert not link.is_symlink()
    assert Manifest.decode(link.read_bytes()) is not None


def test_cli_download_json_names_the_files(job: Job, tmp_path: Path) -> None:
    attachments = tmp_path / "attachments.json"
    attachments.write_text(json.dumps(job.attachments))
    out = tmp_path / "m"
    args = ["--attachments", str(attachments), "-o", str(out)]
    run = _download_cli(job, *args, "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    [d] = doc["downloaded"]
    assert d["manifest_root"] == job.root
    assert d["local_manifest_path"] == str(out / downloaded_manifest_name(job.root))
    assert d["outcome"] == "written"
    assert len(d["manifest_keys"]) == 4
    assert Manifest.decode(Path(d["local_manifest_path"]).read_bytes()) is not None

    plain = _download_cli(job, *args, "--kind", "input")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == f"{job.root} -> {d['local_manifest_path']}\n"
    assert "replaced a different file" in plain.stderr  # inputs alone differ from all


def test_missing_manifests_are_clear_errors(job: Job, aws_env: S3Config, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="found no output manifests of job job-2 under"):
        download_manifests(job.where, IDS[0], IDS[1], "job-2", tmp_path / "a", s3=aws_env)
    with pytest.raises(ValidationError, match="--attachments FILE"):
        download_manifests(job.where, *IDS, tmp_path / "a", kind="input", s3=aws_env)
    none = {"manifests": [{"rootPath": job.root, "rootPathFormat": "posix"}]}
    with pytest.raises(StorageError, match="name no input manifests"):
        download_manifests(
            job.where, *IDS, tmp_path / "a", attachments=none, kind="input", s3=aws_env
        )

    gone = json.loads(json.dumps(job.attachments))
    gone["manifests"][0]["inputManifestPath"] = "farm-1/queue-1/Inputs/nothing/here_input"
    with pytest.raises(StorageError) as e:
        download_manifests(job.where, *IDS, tmp_path / "a", attachments=gone, s3=aws_env)
    assert "Inputs/nothing/here_input" in str(e.value)
    assert not (tmp_path / "a").exists()  # nothing made before every manifest is read

    file = tmp_path / "gone.json"
    file.write_text(json.dumps(gone))
    run = _download_cli(job, "--attachments", str(file), "-o", str(tmp_path / "b"))
    assert run.returncode == 1
    assert run.stderr.startswith("jobattach: error: ")
    assert "here_input" in run.stderr


def test_a_tampered_manifest_in_the_bucket_is_refused_before_anything_is_written(
    job: Job, aws_env: S3Config, tmp_path: Path
) -> None:
    prefix = "JA/Manifests/farm-1/queue-1/job-1/"
    [key, *_] = sorted(k for k in job.bucket.keys(prefix) if "task-2" in k)
    metadata = job.bucket.metadata(key)
    evil = b'{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{"hash":"' + b"0" * 32
    evil += b'","mtime":1,"path":"../../escape","size":1}],"totalSize":1}'
    job.bucket.put_bytes(key, evil, metadata=metadata)
    out = tmp_path / "m"
    with pytest.raises(ValidationError) as e:
        download_manifests(job.where, *IDS, out, attachments=job.attachments, s3=aws_env)
    assert e.value.path == key
    assert not out.exists()

    job.bucket.put_bytes(key, b"\xff not even text", metadata=metadata)
    run = _download_cli(job, "--kind", "output", "-o", str(out))
    assert run.returncode == 1
    assert key in run.stderr
    assert "not UTF-8" in run.stderr


def test_a_hostile_root_names_a_file_inside_the_destination_only(
    aws_env: S3Config, tmp_path: Path
) -> None:
    bucket = _bucket(aws_env, "hostile-root")
    key = "JA/Manifests/farm-1/queue-1/job-1/step-1/task-1/2026-01-01T00:00:00.000000Z_s/x_output"
    root = "/../../../" + "x" * 300 + "/\n..\\evil"
    bucket.put_bytes(
        key, Manifest.from_entries([]).encode(), metadata={"asset-root-json": json.dumps(root)}
    )
    out = tmp_path / "deep" / "m"
    r = download_manifests(S3Location(bucket.name, "JA"), *IDS, out, kind="output", s3=aws_env)
    [d] = r.downloaded
    assert d.manifest_root == root
    assert os.listdir(tmp_path) == ["deep"]
    assert os.listdir(out) == [downloaded_manifest_name(root)] == [Path(d.local_manifest_path).name]
    assert len(os.listdir(out)[0]) <= 142

    surrogate = {"manifests": [{"rootPath": "/a\udcff", "inputManifestPath": key[13:]}]}
    with pytest.raises(ValidationError, match="not Unicode"):
        download_manifests(
            S3Location(bucket.name, "JA"),
            *IDS,
            out,
            attachments=surrogate,
            kind="input",
            s3=aws_env,
        )
