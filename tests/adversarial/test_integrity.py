"""No failure of a submission harms another job's data: content PUTs are create-only and carry
their digest as S3's XXHASH128 checksum, a changed file's object is deleted only when it is the
submission's own and unsound, and every upload a failed or cancelled batch left unfinished is
checked like a finished one. Against the real local server, through faults on loopback."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import xxhash

from conftest import REGION, OnlyBoto3, Recorder, S3Proxy, answer
from jobattach import (
    AssetReferences,
    Cancelled,
    ClientOptions,
    FileAccessError,
    FileChangedError,
    ProgressReport,
    S3Config,
    S3Location,
    StorageError,
    submit_bundle_attachments,
)
from jobattach.submit import ManifestLocation
from jobattach_host.hashing import hash_files
from jobattach_host.s3wire import USER_AGENT, checksum
from jobattach_host.storage import Bucket
from jobattach_host.upload import Content, upload_contents

Proxies = Callable[..., S3Proxy]
PREFIX = "JA"
WHERE = ManifestLocation(
    "farm-0123456789abcdef0123456789abcdef", "queue-0123456789abcdef0123456789abcdef"
)
#: How long a fault waits for the client at most: only a failing test waits this long.
PATIENCE = 30.0


def _key(digest: str) -> str:
    return f"{PREFIX}/Data/{digest}.xxh128"


def _digest_of(key: str) -> str:
    return key.rpartition("/")[2][: -len(".xxh128")]


@pytest.fixture
def bucket(aws_env: S3Config, request: pytest.FixtureRequest) -> Bucket:
    b = Bucket(f"integrity-{abs(hash(request.node.name)) % 10**8}", aws_env)
    b.create()
    return b


def _through(proxy: S3Proxy, **options: int) -> S3Config:
    return S3Config(region=REGION, endpoint_url=proxy.url, options=ClientOptions(**options))  # type: ignore[arg-type]


def _files(top: Path, count: int, size: int = 3000) -> list[Path]:
    top.mkdir(parents=True, exist_ok=True)
    paths = [top / f"f{i:02d}.bin" for i in range(count)]
    for i, p in enumerate(paths):
        p.write_bytes(f"file {i} ".encode() * (size // 8))
    return paths


def _contents(paths: list[Path]) -> list[Content]:
    """What a submission records of each file when it hashes it."""
    digests = hash_files(paths[0].parent, [p.name for p in paths])
    out = []
    for p, d in zip(paths, digests):
        st = p.stat()
        out.append(Content(d, p, st.st_size, st.st_mtime_ns // 1000, st.st_ctime_ns))
    return out


def _unsound(bucket: Bucket) -> list[str]:
    """The objects under ``Data/`` whose content does not hash to their names."""
    return sorted(
        key
        for key in bucket.keys(f"{PREFIX}/Data/")
        if xxhash.xxh3_128_hexdigest(bucket.get_bytes(key)[0]) != _digest_of(key)
    )


def _rewrite(path: Path) -> None:
    """Same size, other bytes: only the file's times tell."""
    path.write_bytes(bytes(b ^ 0xFF for b in path.read_bytes()))


def _upload(bucket: Bucket, files: list[Content], progress: Callable[..., bool]) -> None:
    upload_contents(bucket, _key, files, under=f"{PREFIX}/Data/", progress=progress)


def _drop(request: BaseHTTPRequestHandler) -> bool:
    """Closes the connection without an answer, as a server that dies would."""
    request.close_connection = True
    return True


def _until_closed(request: BaseHTTPRequestHandler) -> None:
    """Waits until the client closes the connection (it gave up on this request)."""
    request.connection.settimeout(PATIENCE)
    try:
        while request.connection.recv(1 << 16):
            pass
    except OSError:
        pass


class Forwarded:
    """Counts the requests a fault passed on to the server, and lets a test wait for them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: list[str] = []
        self.seen: set[str] = set()
        self.changed = threading.Condition(self.lock)

    def first(self, key: str) -> bool:
        """Whether this is the first time ``key`` is seen (a request, not an attempt again)."""
        with self.lock:
            if key in self.seen:
                return False
            self.seen.add(key)
            return True

    def add(self, key: str) -> None:
        with self.changed:
            self.keys.append(key)
            self.changed.notify_all()

    def wait_for(self, n: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.keys) >= n, PATIENCE)


def _key_of(request: BaseHTTPRequestHandler) -> str:
    return request.path.split("?")[0].partition(f"/{PREFIX}/")[2]


# --- A failed or cancelled submission leaves only sound objects -----------------------------


def test_a_server_dying_mid_batch_leaves_no_object_unlike_its_name(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path
) -> None:
    """Every PUT reaches the server, none is answered (it died once it had stored them), and
    the files were rewritten after hashing: what they left must not stay."""
    paths = _files(tmp_path / "src", 12)
    files = _contents(paths)
    stored = Forwarded()

    def dies_after_storing(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.command != "PUT":
            return False  # back up for the checks that follow
        if stored.first(_key_of(request)):
            proxy.send(request, body)
            stored.add(_key_of(request))
            stored.wait_for(len(files))  # no reply is lost before every body is in
        return _drop(request)  # later attempts never arrive

    proxy = s3_proxy(dies_after_storing)

    def rewrite_half_first(*counts: int) -> bool:
        if counts[0] == 0 and not stored.keys:
            for p in paths[::2]:
                _rewrite(p)
        return True

    with pytest.raises(StorageError):
        _upload(Bucket(bucket.name, _through(proxy, max_attempts=2)), files, rewrite_half_first)
    assert len(stored.keys) == len(files)  # every body reached the server
    assert _unsound(bucket) == []


def test_a_file_deleted_mid_batch_leaves_no_object_unlike_its_name(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path
) -> None:
    """Two connections: once the first PUT is in, a later file is rewritten and the last one
    deleted; the rewritten one's PUT reaches the server and is still unanswered when the
    deleted file fails the batch."""
    paths = _files(tmp_path / "src", 6)
    files = _contents(paths)
    rewritten, deleted = files[3], files[5]
    meddled, forwarded = threading.Event(), Forwarded()
    lock = threading.Lock()

    def meddle(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.command != "PUT":
            return False
        with lock:  # the first PUT in; none is answered before: file 3 is read after this
            if not meddled.is_set():
                _rewrite(Path(rewritten.path))
                Path(deleted.path).unlink()
                meddled.set()
        key = _key_of(request)
        if key == _key(files[4].digest).partition("/")[2]:
            forwarded.wait_for(1)  # file 3's PUT is in before the batch can fail
        answered = proxy.send(request, body)
        if key == _key(rewritten.digest).partition("/")[2]:
            forwarded.add(key)
            _until_closed(request)  # unanswered until the batch fails
            return True
        answer(request, *answered)
        return True

    proxy = s3_proxy(meddle)
    with pytest.raises(FileAccessError) as raised:
        _upload(Bucket(bucket.name, _through(proxy, max_pool_connections=2)), files, _go_on)
    assert raised.value.path == str(deleted.path)
    assert forwarded.keys  # the rewritten file's PUT did reach the server
    assert _unsound(bucket) == []


def _go_on(*counts: int) -> bool:
    return True


def test_a_cancel_between_attempts_leaves_no_object_unlike_its_name(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path
) -> None:
    """Every PUT but one reaches the server unanswered and waits to be sent again; the one
    answered finishes a file, and the progress callback cancels there."""
    paths = _files(tmp_path / "src", 8)
    files = _contents(paths)
    good = f"Data/{files[0].digest}.xxh128"
    others = Forwarded()

    def all_but_one_unanswered(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.command != "PUT":
            return False
        key = _key_of(request)
        if key == good:
            others.wait_for(len(files) - 1)
            return False
        if others.first(key):
            proxy.send(request, body)
            others.add(key)
        return _drop(request)  # later attempts never arrive

    proxy = s3_proxy(all_but_one_unanswered)

    def rewrite_then_cancel(files_done: int, *counts: int) -> bool:
        if files_done == 0 and not others.keys:
            for p in paths[1:]:
                _rewrite(p)
        return files_done == 0

    with pytest.raises(Cancelled):
        _upload(Bucket(bucket.name, _through(proxy)), files, rewrite_then_cancel)
    assert len(others.keys) == len(files) - 1
    assert _unsound(bucket) == []
    assert bucket.keys(f"{PREFIX}/Data/") == {_key(files[0].digest)}


@pytest.mark.parametrize("transport", ["event loop", "boto3"])
def test_a_submission_whose_server_dies_leaves_only_sound_objects(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path, transport: str
) -> None:
    """Through the public API, files rewritten as the upload starts, and the server dying
    once it has completed every object: a PUT each on the event loop, a multipart upload each
    through boto3 (a 1-byte threshold), whose CompleteMultipartUpload is never answered."""
    paths = _files(tmp_path / "src", 6)
    stored = Forwarded()

    def dies_after_completing(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        completes = (
            request.command == "PUT"
            if transport == "event loop"
            else (request.command == "POST" and "uploadId=" in request.path)
        )
        if not completes:
            return False
        if stored.first(_key_of(request)):
            proxy.send(request, body)
            stored.add(_key_of(request))
            stored.wait_for(len(paths))
        return _drop(request)

    proxy = s3_proxy(dies_after_completing)
    threshold = {} if transport == "event loop" else {"multipart_threshold": 1}

    def rewrite_once(report: ProgressReport) -> bool:
        if report.phase == "uploading" and not stored.keys:
            for p in paths[::2]:
                _rewrite(p)
        return True

    with pytest.raises(StorageError):
        submit_bundle_attachments(
            REGION,
            S3Location(bucket.name, PREFIX),
            WHERE,
            AssetReferences([str(p) for p in paths]),
            progress_callback=rewrite_once,
            s3=_through(proxy, max_attempts=2, **threshold),
            hash_cache=False,
            check_cache=False,
        )
    assert len(stored.keys) == len(paths)
    assert _unsound(bucket) == []
    assert bucket.keys(f"{PREFIX}/Manifests/") == set()


# --- Another submission's object is never replaced nor deleted ------------------------------


def _honest(bucket: Bucket, tmp_path: Path, content: bytes) -> None:
    """Submission B: the same content from a folder of its own, straight to the server."""
    root = tmp_path / "b"
    root.mkdir(exist_ok=True)
    (root / "same.bin").write_bytes(content)
    submit_bundle_attachments(
        REGION,
        S3Location(bucket.name, PREFIX),
        WHERE,
        AssetReferences([str(root / "same.bin")]),
        s3=bucket.config,
        hash_cache=False,
        check_cache=False,
    )


def test_a_refused_create_never_replaces_nor_deletes_another_submissions_object(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path
) -> None:
    """A's file is rewritten after hashing; while A's PUT is on its way, B submits the same
    content and finishes. A's PUT must not replace B's object, nor A's failure delete it."""
    (path,) = _files(tmp_path / "a", 1)
    original = path.read_bytes()
    files = _contents([path])
    key = _key(files[0].digest)

    def b_first(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.command == "PUT" and _key_of(request) == key.partition("/")[2]:
            _honest(bucket, tmp_path, original)
        return False

    proxy = s3_proxy(b_first)

    def rewrite_first(*counts: int) -> bool:
        if path.read_bytes() == original:
            _rewrite(path)
        return True

    with pytest.raises(FileChangedError) as raised:
        _upload(Bucket(bucket.name, _through(proxy)), files, rewrite_first)
    assert raised.value.path == str(path)
    assert bucket.get_bytes(key)[0] == original  # B's object, as B sent it


def test_a_sound_object_another_submission_relies_on_stays(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path
) -> None:
    """A sends its file whole and right, B finds A's object there and finishes, then A's
    file is touched: A fails, but the object B relies on holds its content and stays."""
    (path,) = _files(tmp_path / "a", 1)
    files = _contents([path])
    key = _key(files[0].digest)

    def then_b(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        answered = proxy.send(request, body)
        if request.command == "PUT" and _key_of(request) == key.partition("/")[2]:
            _honest(bucket, tmp_path, path.read_bytes())
            os.utime(path, ns=(1_000_000_000, 1_000_000_000))
        answer(request, *answered)
        return True

    proxy = s3_proxy(then_b)
    with pytest.raises(FileChangedError):
        _upload(Bucket(bucket.name, _through(proxy)), files, _go_on)
    assert bucket.get_bytes(key)[0] == path.read_bytes()


def test_a_delete_spares_what_another_writer_put_since(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path
) -> None:
    """A's rewritten file makes an object unlike its name; just before A deletes it, another
    writer (as the official client does, without If-None-Match) puts the right content there.
    A's delete must take out only its own object, which is gone."""
    (path,) = _files(tmp_path / "a", 1)
    original = path.read_bytes()
    files = _contents([path])
    key = _key(files[0].digest)

    def overwrite_before_delete(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        deleting = request.command == "DELETE" or (
            request.command == "POST" and "delete" in request.path.partition("?")[2]
        )
        if deleting:
            bucket.client.put_object(Bucket=bucket.name, Key=key, Body=original)
        return False

    proxy = s3_proxy(overwrite_before_delete)

    def rewrite_first(*counts: int) -> bool:
        if path.read_bytes() == original:
            _rewrite(path)
        return True

    with pytest.raises(FileChangedError):
        _upload(Bucket(bucket.name, _through(proxy)), files, rewrite_first)
    assert bucket.get_bytes(key)[0] == original


# --- What a content PUT says about itself ---------------------------------------------------


def _checksum(body: bytes) -> str:
    """S3's XXHASH128 of ``body``: base64 of the canonical (big-endian) xxh3-128 digest."""
    return base64.b64encode(xxhash.xxh3_128(body).digest()).decode()


@pytest.mark.parametrize("transport", ["event loop", "direct", "boto3"])
def test_content_puts_carry_their_digest_and_never_replace(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path, transport: str
) -> None:
    paths = _files(tmp_path / "src", 3)
    files = _contents(paths)
    recorder = Recorder(OnlyBoto3() if transport == "boto3" else None)
    through = Bucket(bucket.name, _through(s3_proxy(recorder)))
    if transport == "event loop":
        upload_contents(through, _key, files)
    else:
        for f in files:
            through.upload_file(_key(f.digest), f.path, digest=f.digest, create_only=True)
    puts = [(h, b) for m, p, h, b in recorder.seen if m == "PUT" and "/Data/" in p]
    if transport == "boto3":  # those the direct path tried first were refused
        puts = [(h, b) for h, b in puts if h.get("user-agent") != USER_AGENT]
    assert len(puts) == len(files)
    for headers, body in puts:
        assert headers["x-amz-checksum-xxhash128"] == _checksum(body)
        assert headers["if-none-match"] == "*"
        signed = headers["authorization"].partition("SignedHeaders=")[2].split(",")[0].split(";")
        assert {"x-amz-checksum-xxhash128", "if-none-match"} <= set(signed)
    assert _unsound(bucket) == []
    # The same contents again, past the checks: each PUT is refused and counts as there.
    again = Bucket(bucket.name, _through(s3_proxy(Recorder())))
    for f in files:
        sent_again = again.upload_file(_key(f.digest), f.path, digest=f.digest, create_only=True)
        assert (sent_again.etag, sent_again.there, sent_again.maybe_ours) == (None, True, False)


def test_our_checksum_is_xxh3_128_as_the_manifest_names_it(tmp_path: Path) -> None:
    """The header is made from the manifest's digest (the component's xxh3-128): it equals
    S3's XXHASH128 computed from the bytes."""
    for size in (0, 3, 1000, 300_000):
        p = tmp_path / f"f{size}"
        p.write_bytes(os.urandom(size))
        (digest,) = hash_files(tmp_path, [p.name])
        assert checksum(digest) == _checksum(p.read_bytes())


def test_a_multipart_completion_never_replaces(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 << 20))
    (digest,) = hash_files(tmp_path, ["big.bin"])
    recorder = Recorder()
    in_parts = {"multipart_threshold": 5 << 20, "multipart_chunksize": 5 << 20}
    through = Bucket(bucket.name, _through(s3_proxy(recorder), **in_parts))
    made = through.upload_file(_key(digest), big, digest=digest, create_only=True)
    (complete,) = [h for m, p, h, _ in recorder.seen if m == "POST" and "uploadId=" in p]
    assert complete["if-none-match"] == "*"
    assert made.etag == bucket.client.head_object(Bucket=bucket.name, Key=_key(digest))["ETag"]
    bucket.client.put_object(Bucket=bucket.name, Key=_key(digest), Body=big.read_bytes())
    refused = through.upload_file(_key(digest), big, digest=digest, create_only=True)
    assert (refused.etag, refused.there) == (None, True)
    assert bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []


class Strict:
    """Refuses a PUT whose body does not hash to its XXHASH128 header, as S3 does."""

    def __init__(self) -> None:
        self.refused = 0

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        claimed = request.headers.get("x-amz-checksum-xxhash128")
        if request.command != "PUT" or claimed is None or claimed == _checksum(body):
            return False
        self.refused += 1
        error = (
            b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>BadDigest</Code><Message>"
            b"The XXHASH128 you specified did not match the calculated checksum.</Message></Error>"
        )
        answer(request, 400, [("Content-Type", "application/xml")], error)
        return True


@pytest.mark.parametrize("transport", ["event loop", "boto3"])
def test_a_body_unlike_its_name_is_refused_where_the_server_checks(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path, transport: str
) -> None:
    """Same size and times restored: only the checksum can tell, and S3 refuses the body."""
    (path,) = _files(tmp_path / "a", 1)
    files = _contents([path])
    files = [files[0]._replace(ctime_ns=None)]  # the one check a rewrite cannot undo, off
    stat = path.stat()
    strict, only_boto3 = Strict(), OnlyBoto3()

    def server(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        return (transport == "boto3" and only_boto3(request, body)) or strict(request, body)

    def rewrite_first(*counts: int) -> bool:
        if not strict.refused and path.read_bytes()[:1] == b"f":
            _rewrite(path)
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        return True

    with pytest.raises(FileChangedError) as raised:
        _upload(Bucket(bucket.name, _through(s3_proxy(server))), files, rewrite_first)
    assert raised.value.path == str(path)
    assert strict.refused >= 1
    assert bucket.keys(f"{PREFIX}/Data/") == set()
