"""Scrubbing a content store (``jobattach attachments verify``) on a real local S3 server:
stores of both uploaders found sound, planted objects unlike their names found and deleted,
foreign objects left alone, stored checksums sparing downloads, and the races of a scrub."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import xxhash

from conftest import REGION, Recorder, S3Proxy, answer, official_upload, through
from jobattach import (
    AssetReferences,
    Cancelled,
    ClientOptions,
    ManifestLocation,
    ProgressReport,
    S3Config,
    S3Location,
    VerifyResult,
    submit_bundle_attachments,
    verify_content,
)
from jobattach.cli import main
from jobattach_host.hash_cache import HashCache
from jobattach_host.s3_check_cache import S3CheckCache
from jobattach_host.storage import Bucket

PREFIX = "JA"
FARM, QUEUE = "farm-0123456789abcdef0123456789abcdef", "queue-0123456789abcdef0123456789abcdef"
Proxies = Callable[..., S3Proxy]


@pytest.fixture
def bucket(aws_env: S3Config, request: pytest.FixtureRequest) -> Bucket:
    b = Bucket(f"verify-{abs(hash(request.node.name)) % 10**8}", aws_env)
    b.create()
    return b


def _digest(body: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(body)


def _key(digest: str) -> str:
    return f"{PREFIX}/Data/{digest}.xxh128"


def _files(top: Path, count: int, tag: str = "") -> list[str]:
    top.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        p = top / f"f{i}.bin"
        p.write_bytes(f"{tag} file {i} ".encode() * (50 + i))
        paths.append(str(p))
    return paths


def _submit(
    bucket: Bucket, s3: S3Config, inputs: list[str], tmp_path: Path, check_cache: S3CheckCache
) -> int:
    """Submits ``inputs`` with our uploader; how many objects it uploaded."""
    result = submit_bundle_attachments(
        REGION,
        S3Location(bucket.name, PREFIX),
        ManifestLocation(FARM, QUEUE),
        AssetReferences(inputs),
        s3=s3,
        hash_cache=HashCache(tmp_path / "ours" / "digests.sqlite3"),
        check_cache=check_cache,
    )
    return result.statistics.processed_files


def _plant(bucket: Bucket, key: str, body: bytes, *, stored_checksum: bool = False) -> None:
    """Puts ``body`` under ``key`` as another client would: with no checksum of ours, or
    with S3's XXHASH128 of the body (what S3 keeps for a PUT that sent it, checked)."""
    if stored_checksum:
        value = base64.b64encode(xxhash.xxh3_128(body).digest()).decode()
        bucket.client.put_object(
            Bucket=bucket.name,
            Key=key,
            Body=body,
            ChecksumAlgorithm="XXHASH128",
            ChecksumXXHASH128=value,
        )
    else:
        bucket.client.put_object(Bucket=bucket.name, Key=key, Body=body)


def _verify(s3: S3Config, bucket: Bucket, **kwargs: object) -> VerifyResult:
    return verify_content(S3Location(bucket.name, PREFIX), s3=s3, **kwargs)  # type: ignore[arg-type]


def _gets(recorder: Recorder) -> list[str]:
    return [p for m, p, _, _ in recorder.seen if m == "GET" and "/Data/" in p]


def _official_cached(cache: Path, bucket: Bucket, key: str) -> bool:
    with sqlite3.connect(cache) as db:
        row = db.execute("SELECT 1 FROM s3checkV1 WHERE s3_key = ?", (f"{bucket.name}/{key}",))
        return row.fetchone() is not None


def test_stores_of_both_uploaders_are_found_sound(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    """Our uploads (small ones with a stored XXHASH128, those in parts without) and the
    official package's (CRC only) in one store: every object checked, none bad, and only
    those without an XXHASH128 downloaded."""
    cache = S3CheckCache(tmp_path / "s3.sqlite3")
    small = _submit(bucket, aws_env, _files(tmp_path / "small", 6), tmp_path, cache)
    in_parts = S3Config(region=REGION, options=ClientOptions(multipart_threshold=1))
    parts = _submit(bucket, in_parts, _files(tmp_path / "parts", 2, "p"), tmp_path, cache)
    official = _files(tmp_path / "official", 4, "o")
    official_upload(bucket.name, PREFIX, official, tmp_path / "oc", FARM, QUEUE)
    reports: list[ProgressReport] = []

    r = _verify(aws_env, bucket, progress_callback=reports.append)

    assert (small, parts) == (6, 2)
    assert r.total_files == r.checked_files == 12
    assert (r.checksum_files, r.downloaded_files) == (6, 6)
    assert r.bad == []
    assert r.foreign == []
    assert r.unchecked == {}
    assert r.downloaded_bytes == sum(os.path.getsize(p) for p in official) + sum(
        os.path.getsize(p) for p in _files(tmp_path / "parts", 2, "p")
    )
    assert reports[-1].phase == "verifying"
    assert reports[-1].processed_files == reports[-1].total_files == 12
    assert reports[-1].processed_bytes == reports[-1].total_bytes == r.total_bytes


def test_stored_checksums_spare_the_download(
    bucket: Bucket, aws_env: S3Config, s3_proxy: Proxies, tmp_path: Path
) -> None:
    """Objects our uploader sent are told by the XXHASH128 S3 keeps: not one GET; an object
    with only a CRC is downloaded, once."""
    cache = S3CheckCache(tmp_path / "s3.sqlite3")
    _submit(bucket, aws_env, _files(tmp_path / "src", 5), tmp_path, cache)
    body = b"sent by another client"
    _plant(bucket, _key(_digest(body)), body)
    recorder = Recorder()

    r = _verify(through(s3_proxy(recorder)), bucket)

    assert (r.checked_files, r.checksum_files, r.downloaded_files) == (6, 5, 1)
    assert _gets(recorder) == [f"/{bucket.name}/{_key(_digest(body))}"]
    heads = [h for m, _, h, _ in recorder.seen if m == "HEAD"]
    assert len(heads) == 5
    assert all(h.get("x-amz-checksum-mode") == "ENABLED" for h in heads)


def test_objects_unlike_their_names_are_found_deleted_and_sent_again(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    """A file rewritten after it was hashed, stored under its old digest (by the official
    uploader, and planted with an honest stored checksum): found with what each holds;
    ``fix`` deletes them, both check caches forget them, and a resubmission by each uploader
    sends them again."""
    cache = S3CheckCache(tmp_path / "s3.sqlite3")
    ours = _files(tmp_path / "ours", 3)
    _submit(bucket, aws_env, ours, tmp_path, cache)
    official = _files(tmp_path / "official", 2, "o")
    official_upload(bucket.name, PREFIX, official, tmp_path / "oc", FARM, QUEUE)
    official_cache = tmp_path / "oc" / "oc" / "s3_check_cache.db"
    ours_key = _key(_digest(Path(ours[0]).read_bytes()))
    official_key = _key(_digest(Path(official[0]).read_bytes()))
    _plant(bucket, ours_key, b"rewritten while sent", stored_checksum=True)
    _plant(bucket, official_key, b"rewritten too")
    assert cache.known(bucket.name, [ours_key]) == {ours_key}
    assert _official_cached(official_cache, bucket, official_key)

    found = _verify(aws_env, bucket, check_cache=cache, official_cache=official_cache)

    ours_bad = (ours_key, _digest(Path(ours[0]).read_bytes()), _digest(b"rewritten while sent"))
    official_bad = (
        official_key,
        _digest(Path(official[0]).read_bytes()),
        _digest(b"rewritten too"),
    )
    assert [(b.key, b.expected, b.actual, b.found_by, b.deleted) for b in found.bad] == sorted(
        [(*ours_bad, "checksum", False), (*official_bad, "download", False)]
    )
    assert found.remaining == found.bad
    assert found.deleted_files == 0
    assert bucket.exists(ours_key)
    assert bucket.exists(official_key)

    fixed = _verify(aws_env, bucket, fix=True, check_cache=cache, official_cache=official_cache)

    assert fixed.deleted_files == 2
    assert fixed.remaining == []
    assert all(b.deleted for b in fixed.bad)
    assert not bucket.exists(ours_key)
    assert not bucket.exists(official_key)
    assert cache.known(bucket.name, [ours_key]) == set()
    assert len(cache.known(bucket.name, bucket.keys(f"{PREFIX}/Data/"))) == 2  # the others stay
    assert not _official_cached(official_cache, bucket, official_key)

    assert _submit(bucket, aws_env, ours, tmp_path, cache) == 1
    official_upload(bucket.name, PREFIX, official, tmp_path / "oc", FARM, QUEUE)
    assert bucket.get_bytes(ours_key)[0] == Path(ours[0]).read_bytes()
    assert bucket.get_bytes(official_key)[0] == Path(official[0]).read_bytes()
    again = _verify(aws_env, bucket, check_cache=cache, official_cache=official_cache)
    assert again.bad == []
    assert again.checked_files == 5


def test_foreign_objects_are_reported_never_deleted(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    digest = _digest(b"x")
    foreign = [
        f"{PREFIX}/Data/README.txt",
        f"{PREFIX}/Data/{digest.upper()}.xxh128",
        f"{PREFIX}/Data/sub/{digest}.xxh128",
        f"{PREFIX}/Data/{digest}.xxh64",
    ]
    for key in foreign:
        _plant(bucket, key, b"not what any name says")
    _plant(bucket, f"{PREFIX}/Data/{digest}", b"x")  # an older upload's name: content

    r = _verify(aws_env, bucket, fix=True, check_cache=False)

    assert r.foreign == sorted(foreign)
    assert r.bad == []
    assert r.checked_files == 1
    assert r.total_files == 5
    assert bucket.keys(f"{PREFIX}/Data/") == {*foreign, f"{PREFIX}/Data/{digest}"}


def test_a_fix_spares_a_sound_object_put_since_the_check(
    bucket: Bucket, aws_env: S3Config, s3_proxy: Proxies
) -> None:
    """Between the check and the delete, another client puts the right content under the
    key: S3 refuses the delete (If-Match on the ETag checked), and the sound object stays."""
    body = b"the content its name says"
    key = _key(_digest(body))
    _plant(bucket, key, b"something else")
    deletes: list[dict[str, str]] = []

    def sound_before_delete(request: BaseHTTPRequestHandler, _: bytes) -> bool:
        if request.command == "DELETE":
            deletes.append({k.lower(): v for k, v in request.headers.items()})
            bucket.client.put_object(Bucket=bucket.name, Key=key, Body=body)
        return False

    r = _verify(through(s3_proxy(sound_before_delete)), bucket, fix=True, check_cache=False)

    assert [(b.key, b.deleted) for b in r.bad] == [(key, False)]
    assert len(deletes) == 1
    assert deletes[0]["if-match"].strip('"')
    assert bucket.get_bytes(key)[0] == body


def test_downloads_go_in_bounded_batches_to_a_private_temporary_folder(
    bucket: Bucket,
    aws_env: S3Config,
    s3_proxy: Proxies,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Downloads land in a staging folder of their own in ``TMPDIR``, at most a batch's
    worth at a time, and nothing stays; an object deleted after the listing is reported
    unchecked while the rest of its batch is checked."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    bodies = [f"object {i} ".encode() * 100 for i in range(6)]
    for body in bodies:
        _plant(bucket, _key(_digest(body)), body)
    gone = _key(_digest(bodies[3]))
    staged: list[tuple[int, int, int]] = []  # folders, files in them, the folder's mode

    def watch(request: BaseHTTPRequestHandler, _: bytes) -> bool:
        if request.command == "GET" and "/Data/" in request.path:
            folders = os.listdir(scratch)
            inside = os.listdir(scratch / folders[0])
            staged.append((len(folders), len(inside), os.stat(scratch / folders[0]).st_mode))
            if request.path.endswith(gone):
                bucket.client.delete_object(Bucket=bucket.name, Key=gone)
        return False

    batch = 2 * len(bodies[0])
    r = _verify(through(s3_proxy(watch)), bucket, batch_bytes=batch, check_cache=False)

    assert r.checked_files == r.downloaded_files == 5
    assert r.bad == []
    assert list(r.unchecked) == [gone]
    assert len(staged) >= len(bodies)  # and the failed batch again, one by one
    assert {folders for folders, _, _ in staged} == {1}
    assert max(files for _, files, _ in staged) == 2  # a batch's worth
    assert {mode & 0o777 for _, _, mode in staged} == {0o700}
    assert os.listdir(scratch) == []


def test_cli_report_as_json_and_exit_status(
    bucket: Bucket, aws_env: S3Config, capsys: pytest.CaptureFixture[str]
) -> None:
    sound, bad = b"sound", b"the name's content"
    _plant(bucket, _key(_digest(sound)), sound)
    _plant(bucket, _key(_digest(bad)), b"another content")
    _plant(bucket, f"{PREFIX}/Data/notes.txt", b"")
    args = ["attachments", "verify", "--bucket", bucket.name, "--root-prefix", PREFIX, "--json"]

    assert main(args) == 3  # bad objects found and not deleted
    report = json.loads(capsys.readouterr().out)
    assert report["checked_files"] == 2
    assert report["bad_files"] == 1
    assert report["bad"] == [
        {
            "key": _key(_digest(bad)),
            "expected": _digest(bad),
            "actual": _digest(b"another content"),
            "found_by": "download",
            "deleted": False,
        }
    ]
    assert report["foreign"] == [f"{PREFIX}/Data/notes.txt"]

    assert main([*args, "--fix"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted_files"] == 1
    assert main(args[:-1]) == 0  # sound now; the report in words
    out = capsys.readouterr()
    assert out.out == f"foreign {PREFIX}/Data/notes.txt: not named by a digest, left as it is\n"
    assert "1 checked" in out.err
    assert "0 bad" in out.err


def test_a_listing_with_bare_etags_still_deletes(
    bucket: Bucket, aws_env: S3Config, s3_proxy: Proxies
) -> None:
    """A server that lists ETags without their quotes (``rclone serve s3``) while its HEAD
    quotes them: the object checked is still recognised, and deleted."""
    body = b"the name's content"
    key = _key(_digest(body))
    _plant(bucket, key, b"other content")
    proxies: list[S3Proxy] = []
    stripped: list[bool] = []

    def bare_etags(request: BaseHTTPRequestHandler, _: bytes) -> bool:
        if request.command != "GET" or "list-type=2" not in request.path:
            return False
        status, headers, data = proxies[0].send(request, b"")
        bare = re.sub(
            rb"<ETag>(?:&quot;|&#34;|\")(.*?)(?:&quot;|&#34;|\")</ETag>", rb"<ETag>\1</ETag>", data
        )
        stripped.append(bare != data)
        answer(request, status, headers, bare)
        return True

    proxies.append(s3_proxy(bare_etags))
    r = _verify(through(proxies[0]), bucket, fix=True, check_cache=False)

    assert stripped == [True]
    assert [(b.key, b.deleted) for b in r.bad] == [(key, True)]
    assert not bucket.exists(key)


def test_a_cancel_stops_before_any_object_is_read(
    bucket: Bucket, aws_env: S3Config, s3_proxy: Proxies, tmp_path: Path
) -> None:
    cache = S3CheckCache(tmp_path / "s3.sqlite3")
    _submit(bucket, aws_env, _files(tmp_path / "src", 3), tmp_path, cache)
    _plant(bucket, _key(_digest(b"y")), b"not y")
    recorder = Recorder()

    with pytest.raises(Cancelled):
        _verify(through(s3_proxy(recorder)), bucket, fix=True, progress_callback=lambda r: False)

    assert [m for m, p, _, _ in recorder.seen if "/Data/" in p] == []
    assert bucket.exists(_key(_digest(b"y")))
