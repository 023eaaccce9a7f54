"""Bounded failure: a server that stops answering, or trickles, fails the operation in a bounded
time with a StorageError that says so, on every path a request takes."""

from __future__ import annotations

import http.client
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from conftest import Fault, S3Proxy
from jobattach import (
    AssetReferences,
    ManifestLocation,
    S3Location,
    StorageError,
    submit_bundle_attachments,
    sync_inputs,
)
from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY
from jobattach_host.s3config import ClientOptions, S3Config
from jobattach_host.storage import Bucket, Transfer

#: Short timeouts, so that a silent server costs a test about a second: the stall timeout is
#: the bound checked, and what botocore alone would do (8 attempts, backoff up to 20 s each)
#: takes far longer.
STALL = 1.0
QUICK = ClientOptions(
    connect_timeout=0.1,
    read_timeout=0.1,
    stall_timeout=STALL,
    multipart_threshold=64,  # 1-byte files go the direct ways, 100-byte ones by the manager
    multipart_chunksize=64,
)


def _config(endpoint: str, options: ClientOptions = QUICK) -> S3Config:
    return S3Config(
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region="us-east-1",
        endpoint_url=endpoint,
        options=options,
    )


class Silent:
    """A server that accepts connections, reads whatever is sent, and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.accepted = 0
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.05):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                if sock is self.listener:
                    conn, _ = sock.accept()
                    self.accepted += 1
                    self._selector.register(conn, selectors.EVENT_READ)
                elif not sock.recv(1 << 16):
                    self._selector.unregister(sock)
                    sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def _file(tmp_path: Path, name: str, size: int = 1) -> Path:
    p = tmp_path / name
    p.write_bytes(b"x" * size)
    return p


#: Every way a request goes: boto3's calls, the transfer manager, the direct path, the event
#: loop's batches.
OPERATIONS: dict[str, Callable[[Bucket, Path], object]] = {
    "check the bucket (boto3)": lambda b, tmp: b.check(),
    "get (boto3)": lambda b, tmp: b.get_bytes("Manifests/m"),
    "put (boto3)": lambda b, tmp: b.put_bytes("Manifests/m", b"{}"),
    "list (boto3)": lambda b, tmp: b.listing("Data/"),
    "head (direct)": lambda b, tmp: b.metadata("Data/x"),
    "download (direct)": lambda b, tmp: b.download_file("Data/x", tmp / "x", size=1),
    "upload (direct)": lambda b, tmp: b.upload_file("Data/x", _file(tmp, "one")),
    "download (transfer manager)": lambda b, tmp: b.download_file("Data/x", tmp / "x"),
    "upload (transfer manager)": lambda b, tmp: b.upload_file("Data/x", _file(tmp, "big", 100)),
    # One request each: the connections counted are then that request's attempts.
    "download batch (event loop)": lambda b, tmp: b.download_files(
        [Transfer("Data/x", tmp / "x", 1)]
    ),
    "upload batch (event loop)": lambda b, tmp: b.upload_files(
        [Transfer("Data/x", _file(tmp, "one"), 1)]
    ),
    "check batch (event loop)": lambda b, tmp: b.metadata_many(["Data/x"]),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_a_server_that_never_answers_fails_within_the_stall_timeout(
    silent: Silent, tmp_path: Path, operation: str
) -> None:
    bucket = Bucket("silent", _config(silent.url))
    t0 = time.monotonic()
    with pytest.raises(StorageError, match=r"no answer in .*ClientOptions\.stall_timeout"):
        OPERATIONS[operation](bucket, tmp_path)
    assert time.monotonic() - t0 < 10 * STALL
    assert 1 <= silent.accepted < QUICK.max_attempts


def test_a_refused_connection_is_not_taken_for_a_silent_server() -> None:
    """urllib3's error for a refused connection descends from its connect timeout: it must
    not count as time waited (it would end the retries early, saying no answer came)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    bucket = Bucket("refused", _config(f"http://127.0.0.1:{port}"))
    with pytest.raises(StorageError, match="Could not connect") as raised:
        bucket.get_bytes("Manifests/m")
    assert "no answer" not in str(raised.value)


class Mute:
    """Lets every request through but those for content (``/Data/``), which it holds without
    an answer until the test ends."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.held = 0

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if "/Data/" not in request.path:
            return False
        self.held += 1
        self.release.wait(30)
        return True


def test_a_job_whose_content_never_comes_fails_its_download_in_bounded_time(
    aws_env: S3Config, s3_endpoint: str, s3_proxy: Callable[[Fault], S3Proxy], tmp_path: Path
) -> None:
    Bucket("ja-mute", aws_env).create()
    inputs = tmp_path / "job"
    inputs.mkdir()
    files = [inputs / f"f{i}.txt" for i in range(5)]
    for i, f in enumerate(files):
        f.write_text(f"input {i}")
    where = S3Location("ja-mute", "JA")
    job = submit_bundle_attachments(
        None,
        where,
        ManifestLocation("farm-1", "queue-1"),
        AssetReferences(input_filenames=[str(f) for f in files]),
        s3=aws_env,
        hash_cache=False,
        check_cache=False,
    )
    mute = Mute()
    proxy = s3_proxy(mute)
    t0 = time.monotonic()
    try:
        with pytest.raises(StorageError, match="no answer in"):
            sync_inputs(where, job.attachments, tmp_path / "session", s3=_config(proxy.url))
    finally:
        mute.release.set()
    assert time.monotonic() - t0 < 10 * STALL
    assert mute.held >= 1


class Trickle:
    """Sends the content of ``/Data/`` objects (fetched from the real server) a few bytes at a
    time, as a congested link would; lets everything else through."""

    def __init__(self, target: str, piece: int, every: float) -> None:
        self.target, self.piece, self.every = target, piece, every
        self.release = threading.Event()

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.command != "GET" or "/Data/" not in request.path:
            return False
        upstream = http.client.HTTPConnection(self.target.split("//", 1)[1])
        upstream.request("GET", request.path, headers=dict(request.headers))
        reply = upstream.getresponse()
        data = reply.read()
        upstream.close()
        request.send_response(reply.status)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        try:
            for start in range(0, len(data), self.piece):
                request.wfile.write(data[start : start + self.piece])
                request.wfile.flush()
                if self.release.wait(self.every):
                    break
        except OSError:
            pass  # the client gave up: what the test wants
        return True


@pytest.fixture
def trickling(
    s3_endpoint: str, s3_proxy: Callable[[Fault], S3Proxy]
) -> Iterator[Callable[[int, float], str]]:
    """Starts trickling proxies: ``start(piece, every)`` returns the proxy's URL."""
    faults: list[Trickle] = []

    def start(piece: int, every: float) -> str:
        fault = Trickle(s3_endpoint, piece, every)
        faults.append(fault)
        return s3_proxy(fault).url

    yield start
    for fault in faults:
        fault.release.set()


def _through_trickle(
    s3_endpoint: str,
    trickle: str,
    tmp_path: Path,
    name: str,
    objects: tuple[int, int],
    options: ClientOptions,
) -> tuple[Bucket, list[Transfer]]:
    """``objects`` (count, size) put in bucket ``name`` directly; a Bucket for it through the
    trickling proxy at ``trickle``, with ``options``, and the downloads of them all."""
    direct = Bucket(name, _config(s3_endpoint, ClientOptions()))
    direct.create()
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    count, size = objects
    for i in range(count):
        (src / f"{i}").write_bytes(bytes([i]) * size)
    direct.upload_files([Transfer(f"Data/{i}", src / f"{i}", size) for i in range(count)])
    downloads = [Transfer(f"Data/{i}", out / f"{i}", size) for i in range(count)]
    return Bucket(name, _config(trickle, options)), downloads


def test_a_transfer_below_the_minimum_rate_fails_naming_the_rate(
    s3_endpoint: str, trickling: Callable[[int, float], str], tmp_path: Path
) -> None:
    strict = ClientOptions(min_rate=1_000_000, min_rate_seconds=0.5)
    trickle = trickling(512, 0.02)  # about 25 KB/s a connection
    slow, downloads = _through_trickle(
        s3_endpoint, trickle, tmp_path, "ja-trickle", (4, 256 << 10), strict
    )
    t0 = time.monotonic()
    with pytest.raises(StorageError, match=r"below the minimum rate of 1 MB/s for 0\.5 s"):
        slow.download_files(downloads)
    assert time.monotonic() - t0 < 10 * 0.5  # each object alone would take ten seconds


def test_a_slow_transfer_above_the_minimum_rate_is_not_stopped(
    s3_endpoint: str, trickling: Callable[[int, float], str], tmp_path: Path
) -> None:
    """Each object takes longer than the window (no file finishes in it) but its bytes keep
    coming faster than the minimum: the rate counts bytes as they arrive, not per file."""
    patient = ClientOptions(min_rate=5_000, min_rate_seconds=0.5)
    trickle = trickling(512, 0.02)  # about 25 KB/s a connection
    slow, downloads = _through_trickle(
        s3_endpoint, trickle, tmp_path, "ja-steady", (2, 32 << 10), patient
    )
    t0 = time.monotonic()
    slow.download_files(downloads)
    assert time.monotonic() - t0 > 0.5  # longer than the window: it was watched, and passed
    assert [Path(t.path).read_bytes() for t in downloads] == [
        bytes([i]) * (32 << 10) for i in (0, 1)
    ]


def test_many_tiny_files_never_trip_the_minimum_rate(s3_endpoint: str, tmp_path: Path) -> None:
    """500 one-byte objects move a few hundred bytes a second, far below a minimum of 1 GB/s,
    for longer than the window: each file finishing keeps the batch alive, as in the official
    rule, in both directions."""
    strict = ClientOptions(min_rate=1e9, min_rate_seconds=0.5)
    bucket = Bucket("ja-tiny", _config(s3_endpoint, strict))
    bucket.create()
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for i in range(500):
        (src / f"{i}").write_bytes(bytes([i % 256]))
    batches: list[Callable[[list[Transfer]], None]] = [bucket.upload_files, bucket.download_files]
    for batch, top in zip(batches, (src, out)):
        t0 = time.monotonic()
        batch([Transfer(f"tiny/{i}", top / f"{i}", 1) for i in range(500)])
        assert time.monotonic() - t0 > 0.5  # longer than the window: watched, and passed
    assert all((out / f"{i}").read_bytes() == bytes([i % 256]) for i in range(500))
