"""VIRTUAL inputs: each root mounted (a real FUSE mount) and fetched on first read, against
the local S3 server, with jobs uploaded by the official tools."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from conftest import REGION, VECTORS, Recorder, official_upload, through
from jobattach import (
    Manifest,
    MountError,
    S3Config,
    S3Location,
    SessionAction,
    sync_inputs,
    sync_outputs,
    unmount,
)
from jobattach.virtual import mounts_below
from jobattach_host.engine import layout
from jobattach_host.storage import Bucket

#: Where the jobs' objects are: the root prefix every test uses.
DATA = layout("JA")

#: How long a test waits for something the kernel or another process does (not a timing).
PATIENCE = 30.0


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Path]:
    """A worker's session folder; whatever a test left mounted in it is unmounted after."""
    where = tmp_path / "session"
    where.mkdir()
    yield where
    unmount(where)


def _job(aws: S3Config, tmp_path: Path, name: str, files: dict[str, bytes]) -> dict[str, Any]:
    """``files`` written below a root, uploaded by the official tools as a VIRTUAL job."""
    bucket = Bucket(f"virtual-{abs(hash(name)) % 10**8}", aws)
    bucket.create()
    root = tmp_path / "submitted"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    inputs = sorted(str(p) for p in root.rglob("*") if p.is_file())
    attachments = official_upload(bucket.name, "JA", inputs, tmp_path, "farm-1", "queue-1")
    doc = attachments.to_dict()
    doc["fileSystem"] = "VIRTUAL"
    return {"bucket": bucket, "root": root, "attachments": doc, "files": files}


def _as_job(aws: S3Config, root: Path, manifest: Manifest, name: str) -> dict[str, Any]:
    """``root``'s files and ``manifest`` put in a bucket as a VIRTUAL job's input: for
    manifests the official tools do not write (the newer format, names not UTF-8)."""
    bucket = Bucket(f"virtual-{abs(hash(name)) % 10**8}", aws)
    bucket.create()
    for e in manifest.entries:
        if e.hash:
            bucket.put_bytes(DATA.data_key(e.hash), (root / e.path).read_bytes())
    bucket.put_bytes(f"JA/Manifests/{name}_input", manifest.encode())
    entry = {
        "rootPath": str(root),
        "rootPathFormat": "posix",
        "inputManifestPath": f"{name}_input",
        "inputManifestHash": manifest.hash(),
    }
    return {"bucket": bucket, "attachments": {"manifests": [entry], "fileSystem": "VIRTUAL"}}


def _many(n: int, size: int = 3000) -> dict[str, bytes]:
    return {f"dir{i % 7}/file{i:03d}.bin": os.urandom(size) + bytes([i % 256]) for i in range(n)}


def _mounted(job: dict[str, Any], session: Path, s3: S3Config, **kwargs: Any) -> Path:
    where = S3Location(job["bucket"].name, "JA")
    result = sync_inputs(where, job["attachments"], session, s3=s3, **kwargs)
    assert result.file_system == "VIRTUAL"
    local = Path(result.roots[str(job["root"])])
    assert os.path.ismount(local)
    return local


def _data_gets(rec: Recorder) -> list[str]:
    """The digests of the objects the server was asked for (each ranged part counted)."""
    return [
        p.split("/Data/")[1].split("?")[0].removesuffix(".xxh128")
        for m, p, _, _ in rec.seen
        if m == "GET" and "/Data/" in p
    ]


def test_a_mounted_root_lists_and_reads_as_the_manifest_says(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    tree = VECTORS / "unicode"
    root = tmp_path / "unicode"
    subprocess.run([sys.executable, str(tree / "gen_tree.py"), str(root)], check=True)
    files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    job = _job(aws_env, tmp_path, "lists", files)
    for rel in files:  # the submitted files' own mtimes, which the manifest holds in µs
        src = job["root"] / rel
        os.utime(src, ns=(src.stat().st_atime_ns, (root / rel).stat().st_mtime_ns))
    local = _mounted(job, session, aws_env)

    seen = {str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()}
    assert seen == set(files)
    manifest = Manifest.decode(
        job["bucket"].get_bytes(
            "JA/Manifests/" + job["attachments"]["manifests"][0]["inputManifestPath"]
        )[0]
    )
    for e in manifest.entries:
        st = (local / e.path).stat()
        assert (st.st_size, st.st_mtime_ns) == (e.size, (e.mtime or 0) * 1000), e.path
        assert (local / e.path).read_bytes() == files[e.path], e.path
        assert not st.st_mode & 0o111  # v2023-03-03 says nothing of executables

    assert unmount(session) == [str(local)]
    assert not os.path.ismount(local)
    shutil.rmtree(session)  # nothing left that blocks clean-up


def test_only_the_files_read_are_fetched(
    aws_env: S3Config, tmp_path: Path, session: Path, s3_proxy: Any
) -> None:
    files = _many(200)
    job = _job(aws_env, tmp_path, "only-read", files)
    rec = Recorder()
    local = _mounted(job, session, through(s3_proxy(rec)))
    listed = [p for p in local.rglob("*") if p.is_file()]
    assert len(listed) == 200
    assert all(p.stat().st_size == 3001 for p in listed)
    assert _data_gets(rec) == []  # listing and stat fetch nothing

    read = sorted(files)[::40]
    for rel in read:
        assert (local / rel).read_bytes() == files[rel]
        assert (local / rel).read_bytes() == files[rel]  # again: from the cache
    from jobattach_host import hash_file

    wanted = {hash_file(job["root"] / rel) for rel in read}
    assert len(read) == 5
    assert sorted(_data_gets(rec)) == sorted(wanted)


def test_many_readers_at_once_get_the_right_bytes(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    files = _many(40, size=200_000)
    files["big.bin"] = os.urandom(40 * 1024 * 1024)  # fetched by ranged parts
    job = _job(aws_env, tmp_path, "readers", files)
    local = _mounted(job, session, aws_env)
    wrong: list[str] = []

    def read(names: list[str]) -> None:
        for rel in names:
            if (local / rel).read_bytes() != files[rel]:
                wrong.append(rel)

    names = sorted(files)
    threads = [threading.Thread(target=read, args=([*names[i::4], "big.bin"],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_a_corrupted_object_is_an_io_error_never_wrong_bytes(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    files = {"good.txt": b"good content", "bad.txt": b"the real content", "short.txt": b"x" * 100}
    job = _job(aws_env, tmp_path, "corrupt", files)
    from jobattach_host import hash_file

    s3 = boto3.client("s3", region_name=REGION)
    name = job["bucket"].name
    s3.put_object(
        Bucket=name, Key=DATA.data_key(hash_file(job["root"] / "bad.txt")), Body=b"the fake content"
    )
    s3.put_object(
        Bucket=name, Key=DATA.data_key(hash_file(job["root"] / "short.txt")), Body=b"x" * 99
    )
    local = _mounted(job, session, aws_env)
    for rel in ("bad.txt", "short.txt"):
        for _ in range(2):  # and not served from a cache the second time either
            with pytest.raises(OSError, match="Input/output error"):
                (local / rel).read_bytes()
    assert (local / "good.txt").read_bytes() == b"good content"


def test_the_cache_stays_within_its_bound(aws_env: S3Config, tmp_path: Path, session: Path) -> None:
    files = _many(12, size=100_000)
    job = _job(aws_env, tmp_path, "bounded", files)
    local = _mounted(job, session, aws_env, cache_limit=350_000)
    (state,) = session.glob(".jobattach-mounts-*")
    for rel in sorted(files):
        assert (local / rel).read_bytes() == files[rel]
        cached = sum(p.stat().st_size for p in (state / "objects").iterdir() if p.is_file())
        assert cached <= 350_000
    first = sorted(files)[0]
    assert (local / first).read_bytes() == files[first]  # evicted, fetched again


def test_writes_stay_local_and_sync_outputs_sends_them(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    from deadline.job_attachments.download import (
        download_files_from_manifests,
        get_asset_root_and_manifest_from_s3,
    )

    files = {"scene.ma": b"the scene", "renders/old.exr": b"old frame", "tex/wood.png": b"wood"}
    job = _job(aws_env, tmp_path, "writes", files)
    job["attachments"]["manifests"] = [
        {**m, "outputRelativeDirectories": ["renders"]} for m in job["attachments"]["manifests"]
    ]
    where = S3Location(job["bucket"].name, "JA")
    inputs = sync_inputs(where, job["attachments"], session, s3=aws_env)
    local = Path(inputs.roots[str(job["root"])])
    (local / "renders" / "beauty.0001.exr").write_bytes(b"pixels" * 1000)
    (local / "renders" / "deep").mkdir()
    (local / "renders" / "deep" / "z.exr").write_bytes(b"depth")
    with open(local / "renders" / "old.exr", "ab") as f:  # an input the task appended to
        f.write(b" and more")
    (local / "tex" / "wood.png").unlink()  # gone from the mount, not from the job
    assert not (local / "tex" / "wood.png").exists()
    assert (local / "scene.ma").read_bytes() == b"the scene"

    action = SessionAction(
        "farm-1", "queue-1", "job-1", "step-1", "sessionaction-1-0", 1.7e9, "task-1"
    )
    result = sync_outputs(where, job["attachments"], session, action, inputs=inputs, s3=aws_env)
    assert result.total_files == 3

    boto = boto3.Session(region_name=REGION)
    _, manifest = get_asset_root_and_manifest_from_s3(result.manifest_keys[0], where.bucket, boto)
    fetched = tmp_path / "fetched"
    download_files_from_manifests(where.bucket, {str(fetched): manifest}, "JA/Data", session=boto)
    assert (fetched / "renders" / "beauty.0001.exr").read_bytes() == b"pixels" * 1000
    assert (fetched / "renders" / "deep" / "z.exr").read_bytes() == b"depth"
    assert (fetched / "renders" / "old.exr").read_bytes() == b"old frame and more"
    # The job's own objects are untouched: a fresh mount serves the inputs as submitted.
    unmount(session)
    again = sync_inputs(where, job["attachments"], tmp_path / "session2", s3=aws_env)
    try:
        other = Path(again.roots[str(job["root"])])
        assert (other / "renders" / "old.exr").read_bytes() == b"old frame"
        assert (other / "tex" / "wood.png").read_bytes() == b"wood"
    finally:
        unmount(tmp_path / "session2")


def test_the_copy_on_write_layer_behaves_as_a_file_system(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    # Names the layer itself might use are a job's like any other.
    files = {"1": b"one", "copy-0123456789abcdef": b"two", "a/b.txt": b"bee", "a/c.txt": b"sea"}
    job = _job(aws_env, tmp_path, "cow", files)
    local = _mounted(job, session, aws_env)
    assert (local / "1").read_bytes() == b"one"
    (local / "new.txt").write_bytes(b"fresh")
    (local / "1").write_bytes(b"replaced")
    assert (local / "1").read_bytes() == b"replaced"
    assert (local / "copy-0123456789abcdef").read_bytes() == b"two"
    os.rename(local / "a" / "b.txt", local / "a" / "moved.txt")
    assert sorted(os.listdir(local / "a")) == ["c.txt", "moved.txt"]
    assert (local / "a" / "moved.txt").read_bytes() == b"bee"
    os.rename(local / "new.txt", local / "a" / "c.txt")  # replaces a manifest file
    assert (local / "a" / "c.txt").read_bytes() == b"fresh"
    with pytest.raises(OSError, match="Directory not empty"):
        os.rmdir(local / "a")
    os.mkdir(local / "out")
    with open(local / "out" / "f", "w") as f:
        f.write("x")
    os.truncate(local / "a" / "moved.txt", 1)
    assert (local / "a" / "moved.txt").read_bytes() == b"b"
    os.chmod(local / "1", 0o755)
    assert (local / "1").stat().st_mode & 0o777 == 0o755
    os.utime(local / "out" / "f", ns=(1_000_000_000_000, 1_234_567_890_123_456_789))
    assert (local / "out" / "f").stat().st_mtime_ns == 1_234_567_890_123_456_789
    with pytest.raises(PermissionError):
        os.symlink("/etc/passwd", local / "link")
    assert not (local / "link").exists()
    # mv -n (renameat2 RENAME_NOREPLACE) never replaces
    done = subprocess.run(["mv", "-n", str(local / "1"), str(local / "a" / "c.txt")])
    assert (local / "a" / "c.txt").read_bytes() == b"fresh"
    assert done.returncode in (0, 1)


def test_reads_during_an_unmount_never_see_wrong_bytes(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    files = {"big.bin": os.urandom(8 * 1024 * 1024)}
    job = _job(aws_env, tmp_path, "unmounting", files)
    local = _mounted(job, session, aws_env)
    outcomes: list[str] = []
    started = threading.Event()

    def read() -> None:
        with open(local / "big.bin", "rb") as f:
            started.set()
            for _ in range(20):
                f.seek(0)
                try:
                    data = f.read()
                except OSError:
                    outcomes.append("error")
                    return
                outcomes.append("right" if data == files["big.bin"] else "wrong")

    reader = threading.Thread(target=read)
    reader.start()
    started.wait(PATIENCE)
    assert unmount(session) == [str(local)]  # in use: detached at once
    assert not os.path.ismount(local)
    reader.join(PATIENCE)
    assert outcomes
    assert "wrong" not in outcomes
    shutil.rmtree(session)


def test_a_killed_server_leaves_no_mount_behind(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    job = _job(aws_env, tmp_path, "killed", {"a.txt": b"a"})
    local = _mounted(job, session, aws_env)
    (pid,) = mounts_below(session).values()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + PATIENCE
    while os.path.ismount(local) and time.monotonic() < deadline:
        time.sleep(0.05)  # fusermount3 notices the server's end on its own
    assert not os.path.ismount(local)
    shutil.rmtree(session)


def test_without_fuse_it_copies_with_a_warning_or_fails_when_asked(
    aws_env: S3Config, tmp_path: Path
) -> None:
    job = _job(aws_env, tmp_path, "no-fuse", {"a.txt": b"a"})
    script = """
import json, sys, warnings
from jobattach import S3Location, sync_inputs, MountError
where = S3Location(sys.argv[1], "JA")
att = json.loads(sys.argv[2])
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    r = sync_inputs(where, att, sys.argv[3])
try:
    sync_inputs(where, att, sys.argv[3] + "-strict", fallback=False)
    strict = "mounted"
except MountError as e:
    strict = str(e)
print(json.dumps({"fs": r.file_system, "warned": [str(x.message) for x in w], "strict": strict}))
"""
    env = dict(os.environ, PATH="/nonexistent")  # no fusermount3: FUSE cannot be used here
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            job["bucket"].name,
            json.dumps(job["attachments"]),
            str(tmp_path / "s"),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(done.stdout)
    assert out["fs"] == "COPIED"
    assert any("fusermount3" in w for w in out["warned"])
    assert "fusermount3" in out["strict"]
    assert (tmp_path / "s").is_dir()
    assert not os.path.ismount(tmp_path / "s")


def test_a_folder_that_holds_files_is_not_mounted_over(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    job = _job(aws_env, tmp_path, "nonempty", {"a.txt": b"a"})
    where = S3Location(job["bucket"].name, "JA")
    copied = sync_inputs(where, job["attachments"], session, s3=aws_env, file_system="COPIED")
    assert copied.file_system == "COPIED"
    with pytest.raises(MountError, match="holds files"):
        sync_inputs(where, job["attachments"], session, s3=aws_env)
    assert mounts_below(session) == {}


def test_cli_mounts_in_the_background_and_unmounts(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    job = _job(aws_env, tmp_path, "cli", {"a.txt": b"alpha", "b/c.txt": b"gamma"})
    job["attachments"]["fileSystem"] = "COPIED"  # --virtual decides
    att = tmp_path / "attachments.json"
    att.write_text(json.dumps(job["attachments"]))
    cli = [sys.executable, "-m", "jobattach.cli", "attachments"]
    done = subprocess.run(
        [
            *cli,
            "download",
            "--bucket",
            job["bucket"].name,
            "--root-prefix",
            "JA",
            "--attachments",
            str(att),
            "--dest",
            str(session),
            "--virtual",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,  # returns once mounted: the serving process holds no pipe of ours
    )
    out = json.loads(done.stdout)
    assert out["file_system"] == "VIRTUAL"
    local = Path(out["roots"][str(job["root"])])
    assert (local / "b" / "c.txt").read_bytes() == b"gamma"
    gone = subprocess.run(
        [*cli, "unmount", str(session), "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(gone.stdout) == {"unmounted": [str(local)]}
    assert not os.path.ismount(local)


def test_a_newer_format_manifest_serves_executables_and_symlinks(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    from jobattach import V2025_SNAPSHOT, create_manifest

    root = tmp_path / "tools"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "render.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "bin" / "render.sh").chmod(0o755)
    (root / "notes.txt").write_bytes(b"notes")
    os.symlink("bin/render.sh", root / "render")
    manifest = create_manifest(root, format=V2025_SNAPSHOT, cache=False).manifest
    job = _as_job(aws_env, root, manifest, "newer")
    where = S3Location(job["bucket"].name, "JA")
    result = sync_inputs(where, job["attachments"], session, s3=aws_env)
    local = Path(result.roots[str(root)])
    assert (local / "bin" / "render.sh").stat().st_mode & 0o777 == 0o755
    assert (local / "notes.txt").stat().st_mode & 0o777 == 0o644
    assert os.readlink(local / "render") == "bin/render.sh"
    assert (local / "render").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert subprocess.run([str(local / "bin" / "render.sh")], capture_output=True).stdout == b"hi\n"


def test_names_that_are_not_utf8_are_served_as_their_bytes(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    vector = VECTORS / "invalid-utf8"
    root = tmp_path / "raw"
    subprocess.run([sys.executable, str(vector / "gen_tree.py"), str(root)], check=True)
    manifest = Manifest.decode((vector / "manifest.json").read_bytes())
    job = _as_job(aws_env, root, manifest, "raw")
    where = S3Location(job["bucket"].name, "JA")
    result = sync_inputs(where, job["attachments"], session, s3=aws_env)
    local = os.fsencode(result.roots[str(root)])
    for e in manifest.entries:
        raw = os.fsencode(e.path)  # a lone surrogate \udcXX is the byte XX
        with open(os.path.join(local, raw), "rb") as f:
            assert f.read() == (root / e.path).read_bytes()
    names = {os.fsencode(e.path).split(b"/")[0] for e in manifest.entries}
    assert names <= set(os.listdir(local))


def test_the_roots_of_a_session_share_one_cache(
    aws_env: S3Config, tmp_path: Path, session: Path, s3_proxy: Any
) -> None:
    bucket = Bucket(f"virtual-{abs(hash('two-roots')) % 10**8}", aws_env)
    bucket.create()
    same = os.urandom(100_000)
    manifests = []
    for name in ("shots", "assets"):  # two uploads: two roots of one job
        (tmp_path / name).mkdir()
        (tmp_path / name / "plate.exr").write_bytes(same)
        inputs = [str(tmp_path / name / "plate.exr")]
        up = official_upload(bucket.name, "JA", inputs, tmp_path / name, "farm-1", "queue-1")
        manifests += up.to_dict()["manifests"]
    doc = {"manifests": manifests, "fileSystem": "VIRTUAL"}
    assert len(doc["manifests"]) == 2
    rec = Recorder()
    result = sync_inputs(S3Location(bucket.name, "JA"), doc, session, s3=through(s3_proxy(rec)))
    assert len(mounts_below(session)) == 2
    read = [
        threading.Thread(target=lambda p=Path(p): (p / "plate.exr").read_bytes())
        for p in result.roots.values()
    ]
    for t in read:
        t.start()
    for t in read:
        t.join()
    for local in result.roots.values():
        assert (Path(local) / "plate.exr").read_bytes() == same
    assert len(_data_gets(rec)) == 1  # two mounts, one object, fetched once


def test_a_name_planted_in_the_layer_is_never_writtenthrough(
    aws_env: S3Config, tmp_path: Path, session: Path
) -> None:
    job = _job(aws_env, tmp_path, "planted", {"a.txt": b"a"})
    local = _mounted(job, session, aws_env)
    (state,) = session.glob(".jobattach-mounts-*")
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    os.symlink(victim, state / "layer-0" / "1")  # the number the first new file takes
    with pytest.raises(FileExistsError):
        (local / "new.txt").write_bytes(b"overwritten?")
    assert victim.read_bytes() == b"keep me"
    (local / "other.txt").write_bytes(b"next number")  # the mount goes on working
    assert (local / "other.txt").read_bytes() == b"next number"
