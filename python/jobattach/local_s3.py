"""A local S3 server on loopback (moto's), started and stopped by jobattach itself.

Used by ``jobattach demo`` and the test suite, so that both run with no cloud account.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from types import TracebackType

from jobattach_host import StorageError

#: Credentials moto accepts (any are); set explicitly so no real ones are ever picked up.
ACCESS_KEY = "jobattach-local"
SECRET_KEY = "jobattach-local-secret"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalS3Server:
    """moto's S3 server in a child process on ``127.0.0.1``; use as a context manager."""

    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        self.port = _free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        # moto logs every request; a file, unlike a pipe, never fills up and stalls it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop())

    def start(self) -> LocalS3Server:
        try:
            import moto.server  # noqa: F401  (only checks that it is installed)
        except ImportError:
            raise StorageError(
                "the local S3 server needs moto: pip install 'jobattach[demo]'"
            ) from None
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=self._log, env=os.environ.copy()
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace").strip()
                raise StorageError(f"the local S3 server exited at start-up: {err[-2000:]}")
            try:
                with urllib.request.urlopen(self.endpoint_url, timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)  # polling for readiness, bounded by the deadline
        self.stop()
        raise StorageError(f"the local S3 server did not answer within {self.startup_timeout}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._log.close()

    def __enter__(self) -> LocalS3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
