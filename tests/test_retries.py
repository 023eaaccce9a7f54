"""Throttling and server errors are retried with backoff; what finally fails is a StorageError."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from conftest import Fault, S3Proxy
from jobattach import StorageError
from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY
from jobattach_host.s3config import ClientOptions, S3Config
from jobattach_host.storage import Bucket

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class Throttling:
    """Answers the first ``failures`` PUTs with 503 SlowDown (every PUT when ``failures`` is
    negative), as S3 does under load; lets the rest through."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.injected = 0
        self.lock = threading.Lock()

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        with self.lock:
            if request.command != "PUT" or 0 <= self.failures <= self.injected:
                return False
            self.injected += 1
        request.send_response(503)
        request.send_header("Content-Type", "application/xml")
        request.send_header("Content-Length", str(len(SLOW_DOWN)))
        request.end_headers()
        request.wfile.write(SLOW_DOWN)
        return True


@pytest.fixture
def proxy_for(s3_proxy: Callable[[Fault], S3Proxy]) -> Callable[[int], tuple[str, Throttling]]:
    """A throttling proxy's URL and its fault, which counts what it injected."""

    def make(failures: int) -> tuple[str, Throttling]:
        fault = Throttling(failures)
        return s3_proxy(fault).url, fault

    return make


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
    s3_endpoint: str, proxy_for: Callable[[int], tuple[str, Throttling]], tmp_path: Path
) -> None:
    _bucket(s3_endpoint, 3).create()
    url, proxy = proxy_for(2)
    f = tmp_path / "x.bin"
    f.write_bytes(b"content")
    through_proxy = _bucket(url, 5)
    through_proxy.upload_file("Data/x", f)
    assert proxy.injected == 2
    assert _bucket(s3_endpoint, 3).get_bytes("Data/x")[0] == b"content"


def test_an_upload_that_stays_throttled_fails_naming_its_key(
    s3_endpoint: str, proxy_for: Callable[[int], tuple[str, Throttling]], tmp_path: Path
) -> None:
    _bucket(s3_endpoint, 3).create()
    url, proxy = proxy_for(-1)
    f = tmp_path / "x.bin"
    f.write_bytes(b"content")
    with pytest.raises(StorageError) as err:
        _bucket(url, 2).put_bytes("Manifests/m", b"{}")
    assert err.value.path == "Manifests/m"
    assert "SlowDown" in str(err.value)
    assert proxy.injected == 2  # every attempt the options allow was made


def test_a_small_file_that_stays_throttled_fails_naming_its_key(
    s3_endpoint: str, proxy_for: Callable[[int], tuple[str, Throttling]], tmp_path: Path
) -> None:
    _bucket(s3_endpoint, 3).create()
    url, proxy = proxy_for(-1)
    f = tmp_path / "x.bin"
    f.write_bytes(b"content")
    with pytest.raises(StorageError) as err:
        _bucket(url, 3).upload_file("Data/x", f)  # the direct path's own retries
    assert err.value.path == "Data/x"
    assert "SlowDown" in str(err.value)
    assert proxy.injected == 3
