"""Batches of small objects on one event loop: many requests in flight at once, stalled and
refused ones handled, local file errors kept apart from S3's, and TLS verified as boto3 does."""

from __future__ import annotations

import datetime
import errno
import ipaddress
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import OnlyBoto3, S3Proxy
from jobattach import FileAccessError, StorageError
from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY
from jobattach_host.s3config import ClientOptions, S3Config
from jobattach_host.s3loop import Loop, _parse_head
from jobattach_host.s3wire import USER_AGENT
from jobattach_host.storage import Bucket, Transfer

Proxies = Callable[..., S3Proxy]


def _config(endpoint: str, **options: float) -> S3Config:
    return S3Config(
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region="us-east-1",
        endpoint_url=endpoint,
        options=ClientOptions(**options),  # type: ignore[arg-type]
    )


def _files(top: Path, count: int) -> list[Path]:
    top.mkdir(parents=True, exist_ok=True)
    paths = [top / f"f{i:03d}.bin" for i in range(count)]
    for i, p in enumerate(paths):
        p.write_bytes(bytes([i % 256]) * (100 + 37 * i))
    return paths


@pytest.fixture
def bucket(s3_endpoint: str) -> Bucket:
    b = Bucket("loop", _config(s3_endpoint))
    b.create()
    return b


class Together:
    """Holds the first ``n`` direct GETs until all ``n`` have arrived: a batch sent one
    request at a time would never get past the first (the barrier breaks, the test fails)."""

    def __init__(self, n: int) -> None:
        self.barrier = threading.Barrier(n, timeout=20)
        self.seen = 0
        self.lock = threading.Lock()

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.command == "GET" and request.headers.get("User-Agent") == USER_AGENT:
            with self.lock:
                self.seen += 1
                first = self.seen <= self.barrier.parties
            if first:
                self.barrier.wait()
        return False


def test_a_batch_keeps_many_requests_in_flight(
    bucket: Bucket, s3_proxy: Proxies, s3_endpoint: str, tmp_path: Path
) -> None:
    paths = _files(tmp_path / "src", 40)
    keys = [f"Data/{p.name}" for p in paths]
    bucket.upload_files([Transfer(k, p, p.stat().st_size) for k, p in zip(keys, paths)])
    together = Together(8)
    through = Bucket("loop", _config(s3_proxy(together).url))
    back = tmp_path / "back"
    back.mkdir()
    done: list[int] = []
    through.download_files(
        [Transfer(k, back / p.name, p.stat().st_size) for k, p in zip(keys, paths)],
        done=done.append,
    )
    assert not together.barrier.broken
    assert together.seen == 40  # all on the direct path, none left to boto3
    assert sorted(done) == list(range(40))
    assert all((back / p.name).read_bytes() == p.read_bytes() for p in paths)


def test_metadata_of_many_keys_says_which_are_missing(bucket: Bucket, tmp_path: Path) -> None:
    paths = _files(tmp_path / "src", 5)
    bucket.upload_files(
        [
            Transfer(f"m/{p.name}", p, p.stat().st_size, {"xxh128": str(i)})
            for i, p in enumerate(paths)
        ]
    )
    asked = ["m/f001.bin", "m/absent", "m/f004.bin"]
    assert bucket.metadata_many(asked) == [{"xxh128": "1"}, None, {"xxh128": "4"}]


class Stall:
    """Never answers direct requests until released: a server that hangs mid-request."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.stalled = 0

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.headers.get("User-Agent") != USER_AGENT:
            return False
        self.stalled += 1
        self.release.wait(30)
        return True


@pytest.fixture
def stall() -> Iterator[Stall]:
    s = Stall()
    yield s
    s.release.set()


def test_a_stalled_request_times_out_and_is_retried_then_fails_naming_its_key(
    bucket: Bucket, s3_proxy: Proxies, stall: Stall, tmp_path: Path
) -> None:
    (src,) = _files(tmp_path / "src", 1)
    through = Bucket("loop", _config(s3_proxy(stall).url, read_timeout=1.0, max_attempts=2))
    with pytest.raises(StorageError, match="upload failed") as raised:
        through.upload_files([Transfer("Data/slow", src, src.stat().st_size)])
    assert raised.value.path == "Data/slow"
    assert stall.stalled == 2  # the first attempt timed out, the second was tried


def test_a_refused_batch_is_done_by_boto3(
    bucket: Bucket, s3_proxy: Proxies, tmp_path: Path
) -> None:
    paths = _files(tmp_path / "src", 12)  # boto3's PUTs wait out the proxy's 100-continue
    refuse = OnlyBoto3()
    through = Bucket("loop", _config(s3_proxy(refuse).url, max_pool_connections=4))
    through.upload_files([Transfer(f"r/{p.name}", p, p.stat().st_size) for p in paths])
    assert 1 <= refuse.refused <= 4  # the requests already in flight; no more were sent
    assert through._transport.direct is None
    assert bucket.keys("r/") == {f"r/{p.name}" for p in paths}


def test_local_file_errors_are_not_storage_errors(bucket: Bucket, tmp_path: Path) -> None:
    missing = tmp_path / "missing.bin"
    with pytest.raises(FileAccessError, match="cannot read for upload") as raised:
        bucket.upload_files([Transfer("Data/m", missing, 10)])
    assert raised.value.path == str(missing)
    (src,) = _files(tmp_path / "src", 1)
    bucket.upload_files([Transfer("Data/x", src, src.stat().st_size)])
    with pytest.raises(FileAccessError, match="cannot write the download") as raised:
        bucket.download_files([Transfer("Data/x", tmp_path / "no" / "dir" / "x", 100)])
    assert raised.value.path == str(tmp_path / "no" / "dir" / "x")


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A TLS server context for 127.0.0.1, and its certificate as a CA bundle."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jobattach test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem, key_pem)
    return context, pem


def test_tls_is_verified_against_the_ca_bundle_boto3_uses(
    bucket: Bucket,
    s3_proxy: Proxies,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context, pem = _self_signed(tmp_path)
    agents: list[str] = []

    def count(request: BaseHTTPRequestHandler, body: bytes) -> bool:
        agents.append(str(request.headers.get("User-Agent")))
        return False

    url = s3_proxy(count, context).url
    paths = _files(tmp_path / "src", 10)
    transfers = [Transfer(f"t/{p.name}", p, p.stat().st_size) for p in paths]

    monkeypatch.setenv("AWS_CA_BUNDLE", str(pem))
    trusted = Bucket("loop", _config(url))
    loop = trusted._transport.loop
    assert isinstance(loop, Loop)
    assert isinstance(loop.tls, ssl.SSLContext)
    trusted.upload_files(transfers)
    assert agents.count(USER_AGENT) == 10  # over TLS, on the direct path
    assert bucket.keys("t/") == {t.key for t in transfers}

    monkeypatch.delenv("AWS_CA_BUNDLE")
    untrusted = Bucket("loop", _config(url, max_attempts=1))
    with pytest.raises(StorageError, match="SSLCertVerificationError"):
        untrusted.download_files([Transfer(transfers[0].key, tmp_path / "x", 100)])


@pytest.mark.parametrize(
    ("head", "status", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 200, True),
        (b"HTTP/1.1 503 Slow Down\r\nConnection: close\r\n\r\n", 503, False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", 200, False),
        (b"HTTP/1.0 404 Not Found\r\nConnection: Keep-Alive\r\n\r\n", 404, True),
    ],
)
def test_reply_heads_say_whether_the_connection_stays(
    head: bytes, status: int, keep_alive: bool
) -> None:
    got_status, headers, got_keep_alive = _parse_head(head)
    assert (got_status, got_keep_alive) == (status, keep_alive)
    assert all(name == name.lower() for name in headers)


def test_no_event_loop_where_boto3_goes_through_a_proxy(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = Bucket("loop", _config(s3_endpoint))._transport.loop
    assert isinstance(loop, Loop)
    assert loop.tls is None  # plain HTTP, on the loop
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    assert Bucket("loop", _config(s3_endpoint))._transport.loop is None


class Scripted:
    """A raw HTTP/1.1 peer on loopback answering each request by ``answer(connection number,
    request number on it, request head)``, which returns the reply's bytes and whether to
    close the connection after it: the replies a real server may give, one at a time."""

    def __init__(self, answer: Callable[[int, int, bytes], tuple[bytes, bool]]) -> None:
        self.answer = answer
        self.connections = self.requests = 0
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn, conn.makefile("rb") as f:
            for k in range(1, 1000):
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = f.readline()
                    if not line:
                        return
                    head += line
                with self.lock:
                    self.requests += 1
                reply, close = self.answer(number, k, head)
                conn.sendall(reply)
                if close:
                    return


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    started: list[Scripted] = []

    def start(answer: Callable[[int, int, bytes], tuple[bytes, bool]]) -> Scripted:
        started.append(Scripted(answer))
        return started[-1]

    yield start
    for s in started:
        s.sock.close()


def test_a_keep_alive_connection_closed_while_idle_costs_no_attempt(
    scripted: Callable[..., Scripted],
) -> None:
    # every connection answers one HEAD, says keep-alive, and is then closed by the server
    peer = scripted(lambda n, k, head: (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", True))
    bucket = Bucket("b", _config(peer.url, max_attempts=1, max_pool_connections=1))
    assert bucket.metadata_many(["a", "b", "c"]) == [{}, {}, {}]
    assert (peer.requests, peer.connections) == (3, 3)


def test_chunked_replies_with_trailers_keep_the_connection_usable(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 999\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-amz-trailer: 1\r\n\r\n"
    )
    peer = scripted(lambda n, k, head: (chunked, False))
    bucket = Bucket("b", _config(peer.url, max_pool_connections=1))
    bucket.download_files([Transfer(f"k{i}", tmp_path / f"f{i}", 11) for i in range(3)])
    assert [(tmp_path / f"f{i}").read_bytes() for i in range(3)] == [b"hello world"] * 3
    assert peer.connections == 1


def test_a_chunked_body_longer_than_expected_is_refused_as_it_comes(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    peer = scripted(lambda n, k, head: (chunked, False))
    bucket = Bucket("b", _config(peer.url, max_pool_connections=1))
    with pytest.raises(StorageError, match="more than the 5 bytes expected"):
        bucket.download_files([Transfer("k", tmp_path / "f", 5)])


def test_cancelling_stops_a_request_between_its_retries(
    scripted: Callable[..., Scripted], tmp_path: Path
) -> None:
    cancel = threading.Event()

    def throttle(n: int, k: int, head: bytes) -> tuple[bytes, bool]:
        cancel.set()  # the caller cancels while its first request is being throttled
        return b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n", False

    peer = scripted(throttle)
    (src,) = _files(tmp_path / "src", 1)
    done: list[int] = []
    bucket = Bucket("b", _config(peer.url, max_attempts=8))
    bucket.upload_files(
        [Transfer("k", src, src.stat().st_size)], done=done.append, cancelled=cancel
    )
    assert peer.requests == 1
    assert done == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_full_disk_is_a_local_error_not_retried(bucket: Bucket, tmp_path: Path) -> None:
    (src,) = _files(tmp_path / "src", 1)
    bucket.upload_files([Transfer("Data/full", src, src.stat().st_size)])
    with pytest.raises(FileAccessError, match="No space left") as raised:  # shows on close
        bucket.download_files([Transfer("Data/full", "/dev/full", src.stat().st_size)])
    assert isinstance(raised.value.__cause__, OSError)
    assert raised.value.__cause__.errno == errno.ENOSPC
