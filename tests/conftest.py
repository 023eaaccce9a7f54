"""Shared fixtures: a real local S3 server, and a private compile cache for the run."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from jobattach_host.s3config import S3Config
from jobattach_host.s3wire import USER_AGENT

ROOT = Path(__file__).resolve().parents[1]
WASM = ROOT / "host" / "jobattach_host" / "jobattach.wasm"
VENV_BIN = Path(sys.executable).parent
#: The golden vectors of the official implementation, in ../shared beside the repository
#: (CI puts it there) unless JOBATTACH_SHARED_DIR says otherwise.
VECTORS = Path(os.environ.get("JOBATTACH_SHARED_DIR", ROOT.parent / "shared")) / "vectors"
if not VECTORS.is_dir():
    raise RuntimeError(f"the golden vectors are missing: {VECTORS} (set JOBATTACH_SHARED_DIR)")


@pytest.fixture(scope="session", autouse=True)
def _private_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Keeps the run from reading or writing the user's cache of compiled components.
    os.environ["JOBATTACH_CACHE_DIR"] = str(tmp_path_factory.mktemp("compile-cache"))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on loopback, started for this test run."""
    from jobattach.local_s3 import LocalS3Server

    with LocalS3Server() as server:
        yield server.endpoint_url


def wasm_tools(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs the wasm-tools installed in the test environment."""
    return subprocess.run(
        [str(VENV_BIN / "wasm-tools"), *args], capture_output=True, text=True, check=False
    )


REGION = "us-west-2"


@pytest.fixture
def aws_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Config:
    """The environment boto3 users (and the official tools) read, all pointing at the local
    server; returns the matching S3Config."""
    from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY

    for name, value in {
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ENDPOINT_URL_STS": s3_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCOUNT_ID": "123456789012",
        "HOME": str(tmp_path / "home"),
    }.items():
        monkeypatch.setenv(name, value)
    return S3Config(region=REGION)


def official_upload(
    bucket: str,
    root_prefix: str,
    inputs: list[str],
    scratch: Path,
    farm: str,
    queue: str,
    references: list[str] | None = None,
) -> Any:
    """Uploads ``inputs`` (with ``references``) with the official deadline-job-attachments;
    returns its Attachments."""
    import boto3
    from deadline.job_attachments.models import JobAttachmentS3Settings
    from deadline.job_attachments.upload import S3AssetManager

    manager = S3AssetManager(
        farm_id=farm,
        queue_id=queue,
        job_attachment_settings=JobAttachmentS3Settings(
            s3BucketName=bucket, rootPrefix=root_prefix
        ),
        session=boto3.Session(region_name=REGION),  # not a session cached by an earlier test
    )
    group = manager.prepare_paths_for_upload(inputs, [], references or [])
    _, manifests = manager.hash_assets_and_create_manifest(
        group.asset_groups,
        group.total_input_files,
        group.total_input_bytes,
        hash_cache_dir=str(scratch / "official-cache"),
    )
    _, attachments = manager.upload_assets(manifests, s3_check_cache_dir=str(scratch / "oc"))
    return attachments


def official_job(
    aws: S3Config, scratch: Path, name: str, files: dict[str, bytes]
) -> dict[str, Any]:
    """``files`` written below ``scratch/submitted`` and uploaded as a job's inputs by the
    official package, in a bucket of their own: the bucket, root, attachments and config."""
    from jobattach_host.storage import Bucket

    bucket = Bucket(f"job-{abs(hash(name)) % 10**8}", aws)
    bucket.create()
    root = scratch / "submitted"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    inputs = sorted(str(root / rel) for rel in files)
    attachments = official_upload(bucket.name, "JA", inputs, scratch, "farm-1", "queue-1")
    return {"bucket": bucket, "root": root, "attachments": attachments.to_dict(), "s3": aws}


def run_task(
    where: Any,
    attachments: dict[str, Any],
    session: Path,
    action: Any,
    files: dict[str, bytes],
    aws: S3Config,
) -> list[str]:
    """A worker's session with jobattach: the job's inputs (``where``, an S3Location, and
    its ``attachments``; one root) downloaded to ``session``, the task writing ``files`` (paths
    relative to the root), its outputs uploaded for ``action`` (a SessionAction); returns the
    output manifests' keys."""
    from jobattach import sync_inputs, sync_outputs

    inputs = sync_inputs(where, attachments, session, s3=aws)
    (local,) = map(Path, inputs.roots.values())
    for name, data in files.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(data)
    done = sync_outputs(where, attachments, session, action, inputs=inputs, s3=aws)
    return done.manifest_keys


#: Decides a request's fate in an ``S3Proxy``: answers it itself (returning True) or lets it
#: through (False). Gets the handler (method, path, headers, wfile) and the request body.
Fault = Callable[[BaseHTTPRequestHandler, bytes], bool]


class S3Proxy:
    """An HTTP proxy in front of the real local server that injects faults, as a flaky
    network or a stricter server would."""

    def __init__(self, target: str, fault: Fault, tls: ssl.SSLContext | None = None) -> None:
        self.target = urlparse(target)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if fault(self, body):
                    return
                answer(self, *proxy.send(self, body))

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:  # a TLS endpoint in front of the plain local server
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def send(self, request: BaseHTTPRequestHandler, body: bytes) -> Reply:
        """Sends the request on to the server; its reply."""
        conn = http.client.HTTPConnection(self.target.netloc)
        try:
            conn.request(request.command, request.path, body, dict(request.headers))
            reply = conn.getresponse()
            return reply.status, reply.getheaders(), reply.read()
        finally:
            conn.close()


#: A reply of the server: status, headers and body.
Reply = tuple[int, list[tuple[str, str]], bytes]


def answer(request: BaseHTTPRequestHandler, status: int, headers: Any, data: bytes) -> None:
    """Answers ``request`` as the server did (``S3Proxy.send``) or as a fault decides."""
    request.send_response(status)
    head = request.command == "HEAD"  # its Content-Length is the object's: passed on
    for k, v in headers:
        dropped = ("transfer-encoding", "connection") + (() if head else ("content-length",))
        if k.lower() not in dropped:
            request.send_header(k, v)
    if not head:
        request.send_header("Content-Length", str(len(data)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(data)


@pytest.fixture
def s3_proxy(s3_endpoint: str) -> Iterator[Callable[..., S3Proxy]]:
    """Starts ``S3Proxy``s in front of the local server; stops them after the test."""
    started: list[S3Proxy] = []

    def start(fault: Fault, tls: ssl.SSLContext | None = None) -> S3Proxy:
        proxy = S3Proxy(s3_endpoint, fault, tls)
        threading.Thread(target=proxy.server.serve_forever, daemon=True).start()
        started.append(proxy)
        return proxy

    yield start
    for p in started:
        p.server.shutdown()
        p.server.server_close()


def through(proxy: S3Proxy, **settings: Any) -> S3Config:
    """The local server's S3 configuration, by way of ``proxy``."""
    from jobattach.local_s3 import ACCESS_KEY, SECRET_KEY

    return S3Config(
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        region=REGION,
        endpoint_url=proxy.url,
        **settings,
    )


class OnlyBoto3:
    """Refuses the direct path's requests (403), as a server would what it cannot authorize,
    and counts them."""

    def __init__(self) -> None:
        self.refused = 0

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        if request.headers.get("User-Agent") != USER_AGENT:
            return False
        self.refused += 1
        request.send_response(403)
        request.send_header("Content-Length", "0")
        request.end_headers()
        return True


class Recorder:
    """Records each request (method, path, headers in lower case, body), then lets ``then``
    decide its fate (default: passed on)."""

    def __init__(self, then: Fault | None = None) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.then = then

    def __call__(self, request: BaseHTTPRequestHandler, body: bytes) -> bool:
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self.lock:
            self.seen.append((request.command, request.path, headers, body))
        return self.then(request, body) if self.then else False


def python_json(script: str, *args: str, timeout: float = 120) -> Any:
    """What a Python snippet run in a fresh interpreter printed last, as JSON (it must exit 0)."""
    run = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def without_read_override(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs a Python snippet for which file permissions apply, even when tests run as root
    (root's capabilities to bypass them are dropped from the child's bounding set)."""
    cmd = [sys.executable, "-c", script, *args]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
