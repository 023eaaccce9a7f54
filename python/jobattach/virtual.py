"""VIRTUAL job attachments: each root mounted where COPIED would have put it.

A root is served by a process of its own (``jobattach_host.mount``), as the official worker
runs one VFS process per root: the listing comes from the root's merged manifest at once,
and a file's content is fetched on its first read. The roots of one download share an object
cache and each has a copy-on-write layer, all in one folder of the session's
(``.jobattach-mounts-…``). A serving process mounts with ``auto_unmount``: when it dies,
``fusermount3`` takes the mount away, so nothing is left that blocks cleaning up.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jobattach_host.engine import internal_name
from jobattach_host.errors import AttachmentError, FileAccessError
from jobattach_host.mount import Serving
from jobattach_host.s3config import S3Config

#: The type a serving process gives its mounts (``fuse.`` and the subtype).
FSTYPE = "fuse.jobattach"
#: How long a mount may take to come up, as the official worker waits for its VFS.
MOUNT_TIMEOUT = 60.0
#: The object cache's bound when none is given.
DEFAULT_CACHE_LIMIT = 10 * 1024**3


class MountError(AttachmentError):
    """A root could not be mounted (the error says why), or FUSE is not available here."""


def fuse_missing() -> str | None:
    """Why this machine cannot mount a root, or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"VIRTUAL mounts need Linux and FUSE; this is {sys.platform}"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse does not exist (FUSE is not available in this machine or container)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (on Debian: apt-get install fuse3)"
    try:
        import mfusepy  # noqa: F401  (loads libfuse3)
    except (ImportError, OSError) as e:
        return f"libfuse3 cannot be loaded: {e}"
    return None


@dataclass(frozen=True)
class Root:
    """One root to mount: where, and its merged v2023-03-03 (or newer) manifest."""

    mountpoint: Path
    manifest: str


def mount_roots(
    bucket: str,
    root_prefix: str,
    s3: S3Config,
    roots: Sequence[Root],
    session_dir: str | os.PathLike[str],
    *,
    cache_limit: int = DEFAULT_CACHE_LIMIT,
) -> Path:
    """Mounts every root, each served by a background process, and returns once all are
    mounted; the folder of their cache and layers is returned. On any failure the roots
    already mounted are unmounted and ``MountError`` says what failed."""
    # Absolute: libfuse takes the serving process to / as it mounts.
    state = _state_folder(Path(os.path.abspath(session_dir)))
    (state / "objects").mkdir(mode=0o700)
    started: list[tuple[Root, subprocess.Popen[bytes], Path]] = []
    allow_other = _may_allow_other()  # read once, for every root
    try:
        for i, root in enumerate(roots):
            layer = state / f"layer-{i}"
            layer.mkdir(mode=0o700)
            spec = Serving(
                mountpoint=os.path.abspath(root.mountpoint),
                manifest=root.manifest,
                cache=str(state / "objects"),
                cache_limit=cache_limit,
                layer=str(layer),
                bucket=bucket,
                root_prefix=root_prefix,
                s3=s3,
                allow_other=allow_other,
            )
            log = state / f"mount-{i}.log"
            started.append((root, _start(spec, log), log))
        deadline = time.monotonic() + MOUNT_TIMEOUT
        for root, proc, log in started:
            _wait_ready(root, proc, log, deadline)
    except BaseException:
        for root, proc, _ in started:
            if proc.poll() is None:
                _unmount_one(str(root.mountpoint))
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            proc.wait()
        raise
    return state


def _state_folder(session_dir: Path) -> Path:
    while True:
        state = session_dir / internal_name("mounts")
        try:
            state.mkdir(mode=0o700)
            return state
        except FileExistsError:
            continue
        except OSError as e:
            raise FileAccessError(
                f"cannot make the mounts' folder: {e.strerror}", path=str(state)
            ) from e


def _may_allow_other() -> bool:
    """Whether the mount may be read by other users (the job's user, when the worker mounts):
    always as root, else when ``/etc/fuse.conf`` says ``user_allow_other``."""
    if os.getuid() == 0:
        return True
    try:
        lines = Path("/etc/fuse.conf").read_text().splitlines()
    except OSError:
        return False
    return any(line.strip() == "user_allow_other" for line in lines)


def _start(spec: Serving, log: Path) -> subprocess.Popen[bytes]:
    # The child imports this very package: it gets this interpreter's path, whatever set it.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobattach_host.mount"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            start_new_session=True,  # serves on after this process and its terminal are gone
        )
    assert proc.stdin is not None
    with proc.stdin:
        proc.stdin.write(pickle.dumps(spec))
    return proc


def _wait_ready(root: Root, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    """Waits for the serving process to say it is mounted; a ``MountError`` naming its last
    words if it exits first, or if the mount takes longer than ``MOUNT_TIMEOUT``."""
    assert proc.stdout is not None
    with proc.stdout:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        said = proc.stdout.readline() if ready else b""
    if said == b"ready\n":
        return
    if not ready:
        raise MountError(f"mounting took over {MOUNT_TIMEOUT:.0f} s", path=str(root.mountpoint))
    proc.wait()
    lines = log.read_text(errors="replace").strip().splitlines()
    words = lines[-1] if lines else f"its process exited with {proc.returncode}"
    raise MountError(f"the mount failed: {words}", path=str(root.mountpoint))


def mounts_below(dest: str | os.PathLike[str]) -> dict[str, int]:
    """This project's mounts at or below ``dest``, deepest first: each mount point and the
    process serving it (the number its ``fsname`` carries)."""
    top = os.path.realpath(dest)
    found: dict[str, int] = {}
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            sep = fields.index(b"-")
            fstype, source = fields[sep + 1].decode(), fields[sep + 2].decode()
            if fstype != FSTYPE or not source.startswith("jobattach:"):
                continue
            point = os.fsdecode(_unescape(fields[4]))
            if point == top or point.startswith(top.rstrip("/") + "/"):
                found[point] = int(source.partition(":")[2])
    return dict(sorted(found.items(), key=lambda kv: kv[0].count("/"), reverse=True))


def _unescape(field: bytes) -> bytes:
    # mountinfo writes space, tab, newline and backslash in a path as \ooo (octal).
    out, i = bytearray(), 0
    while i < len(field):
        if field[i : i + 1] == b"\\" and field[i + 1 : i + 4].isdigit():
            out.append(int(field[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return bytes(out)


def unmount(dest: str | os.PathLike[str]) -> list[str]:
    """Unmounts every root mounted at or below ``dest`` and returns their mount points. A
    mount still in use is detached at once (its open files read on until they are closed),
    so ``dest`` can be removed afterwards."""
    found = mounts_below(dest)
    for point in found:
        _unmount_one(point)
    return list(found)


def _unmount_one(point: str) -> None:
    done = subprocess.run(["fusermount3", "-u", "-q", point], capture_output=True, text=True)
    if done.returncode == 0:
        return
    lazy = subprocess.run(["fusermount3", "-u", "-z", "-q", point], capture_output=True, text=True)
    if lazy.returncode != 0 and os.path.ismount(point):
        why = (lazy.stderr or done.stderr).strip() or "fusermount3 failed"
        raise MountError(f"cannot unmount: {why}", path=point)
