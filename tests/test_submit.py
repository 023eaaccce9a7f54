"""Submitting a job's attachments to a real local S3 server, and the official tools reading them."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
import pytest
from deadline.job_attachments.download import (
    download_files_from_manifests,
    get_asset_root_and_manifest_from_s3,
)

import jobattach
import jobattach.sample
from conftest import REGION, VECTORS, S3Proxy, official_upload, without_read_override
from jobattach import (
    AssetReferences,
    BundleSubmitOptions,
    Cancelled,
    ClientOptions,
    FileChangedError,
    FileSystemLocation,
    ManifestLocation,
    S3Config,
    S3Location,
    StorageError,
    StorageProfile,
    ValidationError,
    submit_bundle_attachments,
)
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.storage import Bucket

PREFIX = "JobAttachments"
WHERE = ManifestLocation(
    "farm-0123456789abcdef0123456789abcdef", "queue-0123456789abcdef0123456789abcdef"
)


@pytest.fixture
def bucket(aws_env: S3Config, request: pytest.FixtureRequest) -> Bucket:
    b = Bucket(f"submit-{abs(hash(request.node.name)) % 10**8}", aws_env)
    b.create()
    return b


@pytest.fixture
def caches(tmp_path: Path) -> dict[str, Any]:
    return {
        "hash_cache": HashCache(tmp_path / "caches" / "digests.sqlite3"),
        "check_cache": S3CheckCache(tmp_path / "caches" / "s3.sqlite3"),
    }


def _tree(root: Path) -> list[str]:
    subprocess.run([sys.executable, str(VECTORS / "basic" / "gen_tree.py"), str(root)], check=True)
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def test_what_we_upload_the_official_tools_download_identically(
    bucket: Bucket, aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "assets"
    inputs = _tree(root)
    refs = AssetReferences(inputs, [str(root / "renders")], [])
    result = submit_bundle_attachments(
        REGION,
        S3Location(bucket.name, PREFIX),
        WHERE,
        refs,
        s3=aws_env,
        **caches,
    )
    (entry,) = result.attachments["manifests"]
    assert entry["rootPath"] == str(root)
    assert entry["rootPathFormat"] == "posix"
    assert entry["outputRelativeDirectories"] == ["renders"]
    assert result.attachments["fileSystem"] == "COPIED"
    assert result.statistics.total_files == len(inputs)

    key = f"{PREFIX}/Manifests/{entry['inputManifestPath']}"
    session = boto3.Session(region_name=REGION)
    asset_root, manifest = get_asset_root_and_manifest_from_s3(key, bucket.name, session)
    assert asset_root == str(root)  # read from our object's metadata
    manifest_bytes, _ = bucket.get_bytes(key)
    assert (
        manifest.encode().encode() == manifest_bytes
    )  # the official encoder agrees, byte for byte
    assert jobattach.decode_manifest(manifest_bytes).hash() == entry["inputManifestHash"]

    dest = tmp_path / "downloaded"
    download_files_from_manifests(
        bucket.name, {str(dest): manifest}, f"{PREFIX}/Data", session=session
    )
    for path in inputs:
        rel = os.path.relpath(path, root)
        assert (dest / rel).read_bytes() == Path(path).read_bytes(), rel


def test_resubmitting_sends_nothing_and_a_wiped_bucket_is_noticed(
    bucket: Bucket, aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    inputs = _tree(tmp_path / "assets")
    refs = AssetReferences(inputs)
    where = S3Location(bucket.name, PREFIX)
    first = submit_bundle_attachments(REGION, where, WHERE, refs, s3=aws_env, **caches)
    distinct = first.statistics.processed_files
    assert distinct > 0
    again = submit_bundle_attachments(REGION, where, WHERE, refs, s3=aws_env, **caches)
    assert again.statistics.processed_files == 0
    assert again.statistics.cached_files == len(inputs)
    for key in bucket.keys(f"{PREFIX}/Data/"):  # lifecycle rules, or a wiped bucket
        bucket.client.delete_object(Bucket=bucket.name, Key=key)
    third = submit_bundle_attachments(REGION, where, WHERE, refs, s3=aws_env, **caches)
    assert third.statistics.processed_files == distinct
    assert len(bucket.keys(f"{PREFIX}/Data/")) == distinct


def test_shared_locations_are_not_uploaded_and_local_ones_name_their_group(
    bucket: Bucket, aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    for rel in ["proj/a.exr", "lib/b.abc"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    profile = StorageProfile(
        [
            FileSystemLocation("Proj", str(tmp_path / "proj"), "LOCAL"),
            FileSystemLocation("Lib", str(tmp_path / "lib"), "SHARED"),
        ]
    )
    refs = AssetReferences([str(tmp_path / "proj/a.exr"), str(tmp_path / "lib/b.abc")])
    result = submit_bundle_attachments(
        REGION,
        S3Location(bucket.name, PREFIX),
        WHERE,
        refs,
        profile,
        s3=aws_env,
        **caches,
    )
    (entry,) = result.attachments["manifests"]
    assert entry["fileSystemLocationName"] == "Proj"
    assert result.skipped_shared == 1
    assert result.statistics.total_files == 1
    _, metadata = bucket.get_bytes(f"{PREFIX}/Manifests/{entry['inputManifestPath']}")
    assert metadata["file-system-location-name"] == "Proj"


def test_missing_inputs_are_named_or_kept_as_references(
    bucket: Bucket, aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "real.txt").write_text("x")
    refs = AssetReferences(
        [str(tmp_path / "real.txt"), str(tmp_path / "gone1"), str(tmp_path / "gone2")]
    )
    where = S3Location(bucket.name, PREFIX)
    strict = BundleSubmitOptions(require_paths_exist=True)
    with pytest.raises(ValidationError) as err:
        submit_bundle_attachments(REGION, where, WHERE, refs, options=strict, s3=aws_env, **caches)
    assert str(tmp_path / "gone1") in str(err.value)
    assert str(tmp_path / "gone2") in str(err.value)
    lenient = submit_bundle_attachments(REGION, where, WHERE, refs, s3=aws_env, **caches)
    assert lenient.missing_inputs == [str(tmp_path / "gone1"), str(tmp_path / "gone2")]
    assert lenient.statistics.total_files == 1


def test_cancelling_writes_no_manifest_and_a_rerun_completes(
    bucket: Bucket, aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    inputs = _tree(tmp_path / "assets")
    refs = AssetReferences(inputs)
    where = S3Location(bucket.name, PREFIX)
    reports: list[jobattach.ProgressReport] = []

    def stop_at_first_upload(report: jobattach.ProgressReport) -> bool:
        reports.append(report)
        return report.phase != "uploading"

    with pytest.raises(Cancelled):
        submit_bundle_attachments(
            REGION,
            where,
            WHERE,
            refs,
            progress_callback=stop_at_first_upload,
            s3=aws_env,
            **caches,
        )
    assert _phases(reports) == ["scanning", "hashing", "uploading"]
    assert bucket.keys(f"{PREFIX}/Manifests/") == set()
    sent = len(bucket.keys(f"{PREFIX}/Data/"))
    done = submit_bundle_attachments(REGION, where, WHERE, refs, s3=aws_env, **caches)
    assert done.statistics.processed_files + sent == len(bucket.keys(f"{PREFIX}/Data/"))
    assert len(bucket.keys(f"{PREFIX}/Manifests/")) == 1
    assert json.loads(done.attachments_json) == done.attachments


@pytest.mark.parametrize("transport", ["event loop", "boto3"])
@pytest.mark.parametrize("rewrite", ["longer", "same size", "same size and mtime"])
def test_a_file_rewritten_after_hashing_leaves_nothing_under_its_old_digest(
    bucket: Bucket,
    aws_env: S3Config,
    caches: dict[str, Any],
    tmp_path: Path,
    transport: str,
    rewrite: str,
) -> None:
    root = tmp_path / "assets"
    root.mkdir()
    scene, texture = root / "scene.ma", root / "texture.png"
    scene.write_bytes(b"version 1\n" * 100)
    texture.write_bytes(b"texture")
    os.utime(scene, (1_600_000_000, 1_600_000_000))  # a rewrite now cannot keep its mtime
    old = jobattach.hash_file(scene)
    new_content = b"version 2\n" * (101 if rewrite == "longer" else 100)
    # Every file on the event loop, or (a 1-byte threshold) every file through boto3.
    options = ClientOptions() if transport == "event loop" else ClientOptions(multipart_threshold=1)
    s3 = S3Config(region=REGION, options=options)
    where = S3Location(bucket.name, PREFIX)
    refs = AssetReferences([str(scene), str(texture)])

    def rewrite_once_uploading(report: jobattach.ProgressReport) -> bool:
        if report.phase == "uploading" and scene.read_bytes() != new_content:
            scene.write_bytes(new_content)
            if rewrite == "same size and mtime":  # as `cp -p` or `rsync -t` leave it
                os.utime(scene, (1_600_000_000, 1_600_000_000))
        return True

    with pytest.raises(FileChangedError) as raised:
        submit_bundle_attachments(
            REGION, where, WHERE, refs, progress_callback=rewrite_once_uploading, s3=s3, **caches
        )
    assert raised.value.path == str(scene)
    data = bucket.keys(f"{PREFIX}/Data/")
    assert f"{PREFIX}/Data/{old}.xxh128" not in data
    assert f"{PREFIX}/Data/{jobattach.hash_file(texture)}.xxh128" in data
    assert bucket.keys(f"{PREFIX}/Manifests/") == set()

    again = submit_bundle_attachments(REGION, where, WHERE, refs, s3=s3, **caches)
    (manifest_key,) = bucket.keys(f"{PREFIX}/Manifests/")
    body, _ = bucket.get_bytes(manifest_key)
    (entry,) = [e for e in jobattach.Manifest.decode(body).entries if e.path == "scene.ma"]
    assert entry.hash == jobattach.hash_file(scene) != old
    assert bucket.get_bytes(f"{PREFIX}/Data/{entry.hash}.xxh128")[0] == new_content
    assert again.statistics.processed_files == 1  # the texture went up the first time


def _phases(reports: list[jobattach.ProgressReport]) -> list[str]:
    return [r.phase for i, r in enumerate(reports) if i == 0 or reports[i - 1].phase != r.phase]


def test_hashing_reports_files_and_bytes_and_can_be_cancelled(
    bucket: Bucket, aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    tree = jobattach.sample.make_tree(tmp_path / "many", count=600, min_size=1, max_size=4096)
    refs = AssetReferences([str(tree.root / f) for f in tree.files])
    where = S3Location(bucket.name, PREFIX)
    size = sum((tree.root / f).stat().st_size for f in tree.files)

    def stop_when_hashing(report: jobattach.ProgressReport) -> bool:
        return report.phase != "hashing"

    with pytest.raises(Cancelled, match="hashing"):
        submit_bundle_attachments(
            REGION, where, WHERE, refs, progress_callback=stop_when_hashing, s3=aws_env, **caches
        )
    assert bucket.keys(f"{PREFIX}/") == set()  # nothing was sent

    reports: list[jobattach.ProgressReport] = []

    def record(report: jobattach.ProgressReport) -> bool:
        reports.append(report)
        return True

    submit_bundle_attachments(
        REGION, where, WHERE, refs, progress_callback=record, s3=aws_env, **caches
    )
    assert _phases(reports) == ["scanning", "hashing", "uploading"]
    hashing = [r for r in reports if r.phase == "hashing"]
    assert {(r.total_files, r.total_bytes) for r in hashing} == {(600, size)}
    assert (hashing[-1].processed_files, hashing[-1].processed_bytes) == (600, size)
    scanned = [r for r in reports if r.phase == "scanning"][-1]
    assert (scanned.processed_files, scanned.processed_bytes) == (600, size)


MiB = 1 << 20
#: Uploads in 8 MiB parts, so two 48 MiB files take many parts.
IN_PARTS = ClientOptions(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB)


def _plates(where: Path) -> list[Path]:
    files = [where / f"plate_{i}.exr" for i in range(2)]
    for i, f in enumerate(files):
        f.write_bytes(bytes([i]) * 48 * MiB)
    return files


def test_a_large_file_reports_its_bytes_and_stops_when_cancelled(
    bucket: Bucket, caches: dict[str, Any], tmp_path: Path
) -> None:
    files = _plates(tmp_path)
    s3 = S3Config(region=REGION, options=IN_PARTS)
    reports: list[jobattach.ProgressReport] = []

    def stop_once_bytes_move(report: jobattach.ProgressReport) -> bool:
        reports.append(report)
        return not (report.phase == "uploading" and report.processed_bytes > 0)

    with pytest.raises(Cancelled):
        submit_bundle_attachments(
            REGION,
            S3Location(bucket.name, PREFIX),
            WHERE,
            AssetReferences([str(f) for f in files]),
            progress_callback=stop_once_bytes_move,
            s3=s3,
            **caches,
        )
    last = reports[-1]
    # Bytes were counted before any whole file was done, and the transfers stopped there.
    assert (last.processed_files, 0 < last.processed_bytes < last.total_bytes) == (0, True)
    assert bucket.keys(f"{PREFIX}/Data/") == set()
    assert bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []


def test_a_wrong_bucket_or_setup_fails_before_any_hashing(
    aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    inputs = _tree(tmp_path / "assets")
    phases: list[str] = []

    def record(report: jobattach.ProgressReport) -> bool:
        phases.append(report.phase)
        return True

    def submit(bucket: str, s3: S3Config) -> None:
        submit_bundle_attachments(
            REGION,
            S3Location(bucket, PREFIX),
            WHERE,
            AssetReferences(inputs),
            progress_callback=record,
            s3=s3,
            **caches,
        )

    with pytest.raises(StorageError, match="the bucket does not exist") as raised:
        submit("no-such-bucket-here", aws_env)
    assert raised.value.path == "no-such-bucket-here"
    assert set(phases) == {"scanning"}
    for wrong in (S3Config(profile="no-such-profile"), S3Config(endpoint_url="not a url")):
        with pytest.raises(StorageError, match="cannot set up S3"):
            submit("any-bucket", wrong)


_SUBMIT_REPORTING_ERRORS = """
import sys, jobattach
from jobattach import AssetReferences, ManifestLocation, S3Location
try:
    jobattach.submit_bundle_attachments(
        None, S3Location(sys.argv[1], "P"), ManifestLocation("farm-1", "queue-1"),
        AssetReferences(sys.argv[2:]), hash_cache=False, check_cache=False,
    )
except jobattach.FileAccessError as e:
    print(e.path)
"""


def test_an_unreadable_input_is_named_by_its_full_path(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    inputs = _tree(tmp_path / "assets")
    locked = Path(inputs[-1])
    locked.chmod(0)
    out = without_read_override(_SUBMIT_REPORTING_ERRORS, bucket.name, *inputs)
    assert out.stdout.strip() == str(locked), out.stderr


def test_refused_credentials_say_what_to_check(
    bucket: Bucket, caches: dict[str, Any], tmp_path: Path, s3_proxy: Callable[..., S3Proxy]
) -> None:
    def refuse_the_wrong_key(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if "Credential=WRONG/" not in request.headers.get("Authorization", ""):
            return False
        reply = b"<Error><Code>InvalidAccessKeyId</Code><Message>no such key</Message></Error>"
        request.send_response(403)
        request.send_header("Content-Length", str(len(reply)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(reply)
        return True

    proxy = s3_proxy(refuse_the_wrong_key)
    s3 = S3Config("WRONG", "secret", region=REGION, endpoint_url=proxy.url)
    with pytest.raises(StorageError, match=r"check the (access key|credentials)"):
        submit_bundle_attachments(
            REGION,
            S3Location(bucket.name, PREFIX),
            WHERE,
            AssetReferences(_tree(tmp_path / "assets")),
            s3=s3,
            **caches,
        )


def test_symlinked_inputs_are_submitted_and_resubmitted(
    bucket: Bucket, aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "assets"
    root.mkdir()
    (root / "plate_v003.exr").write_bytes(b"pixels" * 100)
    (root / "plate_latest.exr").symlink_to("plate_v003.exr")
    (root / "plate_abs.exr").symlink_to(root / "plate_v003.exr")
    refs = AssetReferences([str(root / n) for n in ("plate_latest.exr", "plate_abs.exr")])
    where = S3Location(bucket.name, PREFIX)
    for _ in range(2):  # the second time from the caches
        result = submit_bundle_attachments(REGION, where, WHERE, refs, s3=aws_env, **caches)
        assert result.statistics.total_files == 2
    bodies = {bucket.get_bytes(k)[0] for k in bucket.keys(f"{PREFIX}/Manifests/")}
    (body,) = bodies  # both submissions wrote the same manifest
    m = jobattach.Manifest.decode(body)
    assert [e.path for e in m.entries] == ["plate_abs.exr", "plate_latest.exr"]
    assert {e.hash for e in m.entries} == {jobattach.hash_file(root / "plate_v003.exr")}


def test_the_async_form_can_be_awaited(
    bucket: Bucket, aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    inputs = _tree(tmp_path / "assets")
    call = jobattach.submit_bundle_attachments_async(
        REGION,
        S3Location(bucket.name, PREFIX),
        WHERE,
        AssetReferences(inputs),
        s3=aws_env,
        **caches,
    )
    result = asyncio.run(call)
    assert result.attachments["manifests"][0]["rootPath"] == str(tmp_path / "assets")


def test_cancelling_the_await_stops_the_submission_before_it_returns(
    bucket: Bucket, caches: dict[str, Any], tmp_path: Path
) -> None:
    files = _plates(tmp_path)

    async def cancel_once_uploading() -> None:
        loop = asyncio.get_running_loop()

        def progress(report: jobattach.ProgressReport) -> bool:
            if report.phase == "uploading":
                loop.call_soon_threadsafe(task.cancel)
            return True

        task = asyncio.ensure_future(
            jobattach.submit_bundle_attachments_async(
                REGION,
                S3Location(bucket.name, PREFIX),
                WHERE,
                AssetReferences([str(f) for f in files]),
                progress_callback=progress,
                s3=S3Config(region=REGION, options=IN_PARTS),
                **caches,
            )
        )
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_once_uploading())
    # The submission had stopped by then: no manifest, not every file, no part left open.
    assert bucket.keys(f"{PREFIX}/Manifests/") == set()
    assert len(bucket.keys(f"{PREFIX}/Data/")) < len(files)
    assert bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "jobattach"), "attachments", "upload", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )


def test_cli_upload_prints_the_attachments(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    inputs = _tree(tmp_path / "assets")
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps(
            {
                "fileSystemLocations": [
                    {"name": "Assets", "path": str(tmp_path / "assets"), "type": "LOCAL"}
                ]
            }
        )
    )
    env = dict(os.environ)  # the fixture pointed boto3's variables at the local server
    common = [
        "--bucket",
        bucket.name,
        "--root-prefix",
        PREFIX,
        "--farm-id",
        "farm-1",
        "--queue-id",
        "queue-1",
        "--output-dir",
        str(tmp_path / "assets" / "out"),
    ]
    args = [*common, "--storage-profile", str(profile)]
    for path in inputs:
        args += ["--input", path]
    quiet = _cli(env, *args, "--json")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    doc = json.loads(quiet.stdout)
    (entry,) = doc["manifests"]
    assert entry["fileSystemLocationName"] == "Assets"
    assert entry["outputRelativeDirectories"] == ["out"]
    # One --input taking every path (as `--input PATH...` reads) is the same submission.
    again = _cli(env, *common, "--storage-profile", str(profile), "--input", *inputs)
    assert again.returncode == 0, again.stderr
    assert (
        json.loads(again.stdout)["manifests"][0]["inputManifestHash"] == entry["inputManifestHash"]
    )
    assert f"{len(inputs)} files" in again.stderr
    assert "0 uploaded" in again.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    refused = _cli(env, *common, "--input", inputs[0], "--storage-profile", str(bad))
    assert refused.returncode == 1
    assert "fileSystemLocations" in refused.stderr


def test_cli_draws_progress_bars_on_a_terminal(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    inputs = _tree(tmp_path / "assets")
    command = [str(Path(sys.executable).parent / "jobattach"), "attachments", "upload"]
    where = ["--bucket", bucket.name, "--root-prefix", PREFIX, "--farm-id", "f", "--queue-id", "q"]
    leader, follower = pty.openpty()  # stderr is a terminal, as in an artist's shell
    with subprocess.Popen(
        [*command, *where, "--input", *inputs],
        stdout=subprocess.PIPE,
        stderr=follower,
    ) as proc:
        os.close(follower)
        drawn = b""
        while chunk := _read_or_eof(leader):
            drawn += chunk
        assert proc.wait(timeout=300) == 0
    os.close(leader)
    lines = drawn.decode().replace("\r\n", "\n").split("\r")
    bars = {line.split()[0]: line for line in lines if "[" in line}
    assert set(bars) == {"hashing", "uploading"}, lines
    assert all(f"[{'#' * 16}] 100%" in bar for bar in bars.values()), bars
    assert f"{len(inputs)}/{len(inputs)} files" in bars["hashing"]


def _read_or_eof(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side closed
        return b""


def test_progress_is_reported_at_a_bounded_rate_and_ends_complete(
    bucket: Bucket, aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    tree = jobattach.sample.make_tree(tmp_path / "many", count=300, min_size=1, max_size=4096)
    seen: list[tuple[float, jobattach.ProgressReport]] = []

    def record(report: jobattach.ProgressReport) -> bool:
        seen.append((time.perf_counter(), report))
        return True

    refs = AssetReferences([str(tree.root / f) for f in tree.files])
    where = S3Location(bucket.name, PREFIX)
    result = submit_bundle_attachments(
        REGION, where, WHERE, refs, progress_callback=record, s3=aws_env, **caches
    )
    uploading = [(t, r) for t, r in seen if r.phase == "uploading"]
    assert uploading, "no upload progress was reported"
    last = uploading[-1][1]
    assert (last.processed_files, last.processed_bytes) == (last.total_files, last.total_bytes)
    assert last.total_files == result.statistics.processed_files
    between = [b[0] - a[0] for a, b in zip(uploading[1:-1], uploading[2:-1])]
    # Stamped in the callback, a little after the reporter read its clock: a thread can wait
    # out the GIL's 5 ms switch interval in between.
    assert all(gap >= 0.09 for gap in between), min(between)
    assert len(uploading) < result.statistics.processed_files  # not one report per file


def test_our_manifest_objects_are_the_official_uploads_byte_for_byte(
    bucket: Bucket, aws_env: S3Config, caches: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "assets"
    subprocess.run(
        [sys.executable, str(VECTORS / "unicode" / "gen_tree.py"), str(root)], check=True
    )
    inputs = sorted(str(p) for p in root.rglob("*") if p.is_file())

    official = official_upload(
        bucket.name, "Official", inputs, tmp_path, WHERE.farm_id, WHERE.queue_id
    )

    ours = submit_bundle_attachments(
        REGION,
        S3Location(bucket.name, PREFIX),
        WHERE,
        AssetReferences(inputs),
        s3=aws_env,
        **caches,
    )
    (theirs,) = official.manifests
    (mine,) = ours.attachments["manifests"]
    assert mine["rootPath"] == theirs.rootPath
    assert mine["inputManifestHash"] == theirs.inputManifestHash
    # The same object name under Inputs/<guid>/, and the same bytes.
    their_path = str(theirs.inputManifestPath)
    assert mine["inputManifestPath"].rsplit("/", 1)[1] == their_path.rsplit("/", 1)[1]
    their_bytes, _ = bucket.get_bytes(f"Official/Manifests/{their_path}")
    our_bytes, _ = bucket.get_bytes(f"{PREFIX}/Manifests/{mine['inputManifestPath']}")
    assert our_bytes == their_bytes
    # Stored with the manifests' content type, as the component gives it.
    client = boto3.client("s3", region_name=REGION)
    head = client.head_object(
        Bucket=bucket.name, Key=f"{PREFIX}/Manifests/{mine['inputManifestPath']}"
    )
    assert head["ContentType"] == "application/x-deadline-manifest-2023-03-03"
    assert {k.rsplit("/", 1)[1] for k in bucket.keys("Official/Data/")} == {
        k.rsplit("/", 1)[1] for k in bucket.keys(f"{PREFIX}/Data/")
    }
