"""Throttling and server errors are retried with backoff; what finally fails is a StorageError."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from jobattach import StorageError
from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY
from jobattach_host.storage import Bucket, ClientOptions, S3Config

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FaultyProxy:
    """Forwards to the real server, but answers the first ``failures`` PUTs with 503 SlowDown
    (or every PUT when ``failures`` is negative)."""

    def __init__(self, target: str, failures: int) -> None:
        self.target = urlparse(target)
        self.failures = failures
        self.injected = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT" and proxy._fail():
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
                    return
                conn = http.client.HTTPConnection(proxy.target.netloc)
                conn.request(self.command, self.path, body, dict(self.headers))
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for k, v in reply.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _fail(self) -> bool:
        with self.lock:
            if self.failures < 0 or self.injected < self.failures:
                self.injected += 1
                return True
            return False


@pytest.fixture
def proxy_for(s3_endpoint: str) -> Iterator[Callable[[int], FaultyProxy]]:
    started: list[FaultyProxy] = []

    def make(failures: int) -> FaultyProxy:
        p = FaultyProxy(s3_endpoint, failures)
        p.thread.start()
        started.append(p)
        return p

    yield make
    for p in started:
        p.server.shutdown()
        p.server.server_close()


def _bucket(endpoint: str, attempts: int) -> Bucket:
    options = ClientOptions(max_attempts=attempts)
    return Bucket(
        "retries",
        S3Config(
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            region="us-west-2",
            endpoint_url=endpoint,
            options=options,
        ),
    )


def test_throttled_uploads_are_retried_until_they_succeed(
    s3_endpoint: str, proxy_for: Callable[[int], FaultyProxy], tmp_path: Path
) -> None:
    _bucket(s3_endpoint, 3).create()
    proxy = proxy_for(2)
    f = tmp_path / "x.bin"
    f.write_bytes(b"content")
    through_proxy = _bucket(proxy.url, 5)
    through_proxy.upload_file("Data/x", f)
    assert proxy.injected == 2
    assert _bucket(s3_endpoint, 3).get_bytes("Data/x")[0] == b"content"


def test_an_upload_that_stays_throttled_fails_naming_its_key(
    s3_endpoint: str, proxy_for: Callable[[int], FaultyProxy], tmp_path: Path
) -> None:
    _bucket(s3_endpoint, 3).create()
    proxy = proxy_for(-1)
    f = tmp_path / "x.bin"
    f.write_bytes(b"content")
    with pytest.raises(StorageError) as err:
        _bucket(proxy.url, 2).put_bytes("Manifests/m", b"{}")
    assert err.value.path == "Manifests/m"
    assert "SlowDown" in str(err.value)
    assert proxy.injected == 2  # every attempt the options allow was made


def test_a_small_file_that_stays_throttled_fails_naming_its_key(
    s3_endpoint: str, proxy_for: Callable[[int], FaultyProxy], tmp_path: Path
) -> None:
    _bucket(s3_endpoint, 3).create()
    proxy = proxy_for(-1)
    f = tmp_path / "x.bin"
    f.write_bytes(b"content")
    with pytest.raises(StorageError) as err:
        _bucket(proxy.url, 3).upload_file("Data/x", f)  # the direct path's own retries
    assert err.value.path == "Data/x"
    assert "SlowDown" in str(err.value)
    assert proxy.injected == 3
