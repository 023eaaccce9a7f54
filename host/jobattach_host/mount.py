"""Serving one job root as a FUSE file system: the host side of the component's mount tree.

The tree (``mount_tree.MountTree``, the component's) answers every question about names:
what stands at a path, a folder's entries, what creating, removing or renaming does. This
module performs the I/O those answers call for:

- A manifest's file is read from the session's ``ObjectCache``: its object fetched on the
  first read and verified against its digest before any byte is served (content that does
  not match is ``EIO``). Its pages stay in the kernel's cache (``keep_cache``): a digest's
  bytes never change.
- A file the task creates or changes lives in the copy-on-write layer, a folder of this
  process whose files are named by the tree's layer numbers; every operation there is made
  relative to the folder's handle, never following a symlink. A manifest file is copied up
  (its object copied into a new layer file) before its first change.
- Reads go by ``read_buf``: libfuse reads the cache's or the layer's file descriptor itself,
  so no file byte becomes a Python object.

``serve`` runs in a process of its own (``python -m jobattach_host.mount``), one per root,
as the official worker runs its VFS binary; ``jobattach.virtual`` starts and stops it.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import pickle
import secrets
import stat
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from .destination import copy_fds
from .engine import layout
from .errors import AttachmentError
from .mount_tree import MountTree, Node
from .object_cache import ObjectCache
from .s3config import S3Config
from .storage import Bucket

_LAYER_FLAGS = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
#: Flags of an open that changes the file: a manifest file is copied up first.
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND
_FUSE_BUF_IS_FD = 1 << 1
_FUSE_BUF_FD_SEEK = 1 << 2


class _Buf(ctypes.Structure):
    """libfuse's ``struct fuse_buf``."""

    _fields_ = [
        ("size", ctypes.c_size_t),
        ("flags", ctypes.c_int),
        ("mem", ctypes.c_void_p),
        ("fd", ctypes.c_int),
        ("pos", ctypes.c_int64),
    ]


class _BufVec(ctypes.Structure):
    """libfuse's ``struct fuse_bufvec`` with its one buffer inline, as fuse_common.h has it
    (mfusepy declares that buffer as a pointer)."""

    _fields_ = [
        ("count", ctypes.c_size_t),
        ("idx", ctypes.c_size_t),
        ("off", ctypes.c_size_t),
        ("buf", _Buf),
    ]


@functools.cache
def _malloc() -> Any:
    # libfuse frees the vector a read_buf hands it with free(): it must come from malloc.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    return libc.malloc


def _now_us() -> int:
    return time.time_ns() // 1000


def _rel(path: str) -> str:
    # libfuse gives absolute paths below the mount; the tree takes them relative ("" = root).
    return path.lstrip("/")


class RootFS:
    """The file system of one root: ``tree`` for names, ``cache`` for the manifest's
    content, ``layer`` (an open folder's handle) for what the task writes. mfusepy calls the
    methods named after FUSE's operations; libfuse answers ``ENOSYS`` for the others."""

    use_ns = True

    def __init__(
        self, tree: MountTree, cache: ObjectCache, layer: int, ready: Callable[[], None]
    ) -> None:
        self.tree = tree
        self.cache = cache
        self.layer = layer
        self.ready = ready
        self._guard = threading.Lock()  # the tree's Store serves one call at a time
        self.uid, self.gid = os.getuid(), os.getgid()

    # -- names ------------------------------------------------------------------------------

    def init_with_config(self, conn: Any, config: Any) -> None:
        # Requests of up to 1 MiB (the kernel derives its largest from max_write): a quarter
        # as many calls into Python as its default allows. (Replying by splice measured slower.)
        conn.max_write = conn.max_readahead = 1 << 20
        self.ready()

    def _lookup(self, path: str) -> Node:
        with self._guard:
            return self.tree.lookup(_rel(path))

    def getattr(self, path: str, fh: Any = None) -> dict[str, int]:
        return self._attrs(self._lookup(path))

    def _attrs(self, node: Node) -> dict[str, int]:
        base = {"st_ino": node.id, "st_uid": self.uid, "st_gid": self.gid}
        if node.kind == "l":
            st = os.stat(str(node.ref), dir_fd=self.layer, follow_symlinks=False)
            perm = stat.S_IMODE(st.st_mode)
            return (
                base
                | _times(st.st_mtime_ns)
                | {
                    "st_mode": stat.S_IFREG | perm,
                    "st_size": st.st_size,
                    "st_nlink": 1,
                    "st_blocks": st.st_blocks,
                }
            )
        mtime = _times(node.mtime_us * 1000)
        if node.kind == "d":
            return base | mtime | {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if node.kind == "s":
            target = str(node.ref).encode("utf-8", "surrogateescape")
            return base | mtime | {"st_mode": stat.S_IFLNK | 0o777, "st_size": len(target)}
        perm = 0o755 if node.executable else 0o644
        blocks = (node.size + 511) // 512
        return (
            base
            | mtime
            | {
                "st_mode": stat.S_IFREG | perm,
                "st_size": node.size,
                "st_nlink": 1,
                "st_blocks": blocks,
            }
        )

    def readdir(self, path: str, fh: int) -> list[Any]:
        with self._guard:
            entries = self.tree.entries(_rel(path))
        return [".", ".."] + [
            (name, {"st_ino": n.id, "st_mode": _kind_mode(n)}, 0) for name, n in entries
        ]

    def readlink(self, path: str) -> str:
        node = self._lookup(path)
        if node.kind != "s":
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return str(node.ref)

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self.layer)
        keys = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree")
        return {k: getattr(st, k) for k in keys} | {"f_namemax": 255}

    # -- opening and reading ----------------------------------------------------------------

    def open(self, path: str, fi: Any) -> int:
        flags = fi.flags
        if flags & _WRITING:
            node = self._copied_up(path, fill=not flags & os.O_TRUNC)
            fi.fh = self._open_layer(node, flags & ~(os.O_CREAT | os.O_EXCL))
            return 0
        node = self._lookup(path)
        if node.kind == "d":
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        if node.kind == "l":
            fi.fh = self._open_layer(node, os.O_RDONLY)
            return 0
        fi.fh = self._object(node)
        fi.keep_cache = 1  # a digest's content never changes: the kernel may keep its pages
        return 0

    def _object(self, node: Node) -> int:
        try:
            return self.cache.open(str(node.ref), node.size)
        except AttachmentError as e:  # missing, or not the manifest's content: never served
            print(f"jobattach mount: {e}", file=sys.stderr, flush=True)  # the mount's log
            raise OSError(errno.EIO, str(e)) from e

    def _open_layer(self, node: Node, flags: int) -> int:
        return os.open(str(node.ref), flags | _LAYER_FLAGS, dir_fd=self.layer)

    def read_buf(self, path: str, bufpp: Any, size: int, offset: int, fi: Any) -> int:
        # One buffer naming the descriptor: libfuse reads (or splices) it at the offset.
        vec = ctypes.cast(_malloc()(ctypes.sizeof(_BufVec)), ctypes.POINTER(_BufVec))
        if not vec:
            raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))
        v = vec.contents
        v.count, v.idx, v.off = 1, 0, 0
        v.buf.size, v.buf.flags, v.buf.mem = size, _FUSE_BUF_IS_FD | _FUSE_BUF_FD_SEEK, None
        v.buf.fd, v.buf.pos = fi.fh, offset
        bufpp[0] = ctypes.cast(vec, type(bufpp[0]))
        return 0

    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        return os.pread(fi.fh, size, offset)  # only where libfuse does not take read_buf

    def release(self, path: str, fi: Any) -> int:
        os.close(fi.fh)
        return 0

    # -- changes: the copy-on-write layer ---------------------------------------------------

    def create(self, path: str, mode: int, fi: Any) -> int:
        with self._guard:
            node = self.tree.create(_rel(path), directory=False, now_us=_now_us())
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _LAYER_FLAGS
            fi.fh = os.open(str(node.ref), flags, mode & 0o7777, dir_fd=self.layer)
        return 0

    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        return os.pwrite(fi.fh, data, offset)

    def truncate(self, path: str, length: int, fi: Any = None) -> int:
        node = self._copied_up(path, fill=length > 0)
        fd = self._open_layer(node, os.O_WRONLY)
        try:
            os.ftruncate(fd, length)
        finally:
            os.close(fd)
        return 0

    def flush(self, path: str, fi: Any) -> int:
        return 0

    def fsync(self, path: str, datasync: int, fi: Any) -> int:
        (os.fdatasync if datasync else os.fsync)(fi.fh)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        with self._guard:
            self.tree.create(_rel(path), directory=True, now_us=_now_us())
        return 0

    def unlink(self, path: str) -> int:
        with self._guard:
            self._drop(self.tree.remove(_rel(path), directory=False))
        return 0

    def rmdir(self, path: str) -> int:
        with self._guard:
            self.tree.remove(_rel(path), directory=True)
        return 0

    def rename(self, old: str, new: str) -> int:
        return self.rename2(old, new, 0)

    def rename2(self, old: str, new: str, flags: int) -> int:
        if flags & ~_RENAME_NOREPLACE:
            raise OSError(errno.EINVAL, "a job's mount cannot exchange two names")
        with self._guard:
            if flags & _RENAME_NOREPLACE and _stands(self.tree, _rel(new)):
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
            self._drop(self.tree.rename(_rel(old), _rel(new)))
        return 0

    def chmod(self, path: str, mode: int, fi: Any = None) -> int:
        if self._lookup(path).kind == "d":
            return 0  # a folder of the mount is always 0755: nothing of it is stored
        node = self._copied_up(path, fill=True)
        os.chmod(str(node.ref), mode & 0o7777, dir_fd=self.layer)
        return 0

    def utimens(self, path: str, times: Any = None, fi: Any = None) -> int:
        if self._lookup(path).kind == "d":
            return 0
        node = self._copied_up(path, fill=True)
        st = os.stat(str(node.ref), dir_fd=self.layer, follow_symlinks=False)
        now = time.time_ns()
        given = times if times is not None else (now, now)
        ns = (_time(given[0], now, st.st_atime_ns), _time(given[1], now, st.st_mtime_ns))
        os.utime(str(node.ref), ns=ns, dir_fd=self.layer, follow_symlinks=False)
        return 0

    def symlink(self, target: str, source: str) -> int:
        raise OSError(errno.EPERM, "a job's mount takes no new symlinks")

    def link(self, target: str, source: str) -> int:
        raise OSError(errno.EPERM, "a job's mount takes no hard links")

    def _drop(self, number: int | None) -> None:
        """Deletes the layer file of a node the tree no longer holds (an open descriptor of
        it keeps working)."""
        if number is not None:
            os.unlink(str(number), dir_fd=self.layer)

    def _copied_up(self, path: str, *, fill: bool) -> Node:
        """The layer file of the file at ``path``, made from the manifest's object (or empty,
        without ``fill``) on its first change. The object is fetched and copied outside the
        lock; the layer's name is taken under it, so two first writers make one copy."""
        while True:
            node = self._lookup(path)
            if node.kind == "l":
                return node
            if node.kind != "f":
                code = errno.EISDIR if node.kind == "d" else errno.EPERM
                raise OSError(code, os.strerror(code))
            temp = self._filled(node, fill)
            try:
                with self._guard:
                    now = self.tree.lookup(_rel(path))
                    if now.id != node.id:  # replaced meanwhile: start again
                        continue
                    up = self.tree.copy_up(_rel(path))
                    os.rename(temp, str(up.ref), src_dir_fd=self.layer, dst_dir_fd=self.layer)
                    temp = ""
                    return up
            finally:
                if temp:
                    os.unlink(temp, dir_fd=self.layer)

    def _filled(self, node: Node, fill: bool) -> str:
        """A new file of the layer, under a name no layer number takes, holding the manifest
        file's content (or nothing), with its mtime and mode."""
        temp = f"copy-{secrets.token_hex(8)}"
        mode = 0o755 if node.executable else 0o644
        fd = os.open(
            temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _LAYER_FLAGS, mode, dir_fd=self.layer
        )
        try:
            if fill and node.size:
                src = self._object(node)
                try:
                    copy_fds(src, fd, node.size)
                finally:
                    os.close(src)
            os.utime(fd, ns=(time.time_ns(), node.mtime_us * 1000))
        except BaseException:
            os.close(fd)
            os.unlink(temp, dir_fd=self.layer)
            raise
        os.close(fd)
        return temp


def _times(mtime_ns: int) -> dict[str, int]:
    return {"st_mtime": mtime_ns, "st_atime": mtime_ns, "st_ctime": mtime_ns}


def _time(given: int, now: int, old: int) -> int:
    """A time ``utimens`` was given (as mfusepy adds a timespec up: seconds times 10^9 plus
    nanoseconds), with ``UTIME_NOW`` and ``UTIME_OMIT`` read as what they say."""
    if (given - _UTIME_NOW) % 1_000_000_000 == 0:
        return now
    if (given - _UTIME_OMIT) % 1_000_000_000 == 0:
        return old
    return given


def _stands(tree: MountTree, path: str) -> bool:
    try:
        tree.lookup(path)
    except FileNotFoundError:
        return False
    return True


def _kind_mode(node: Node) -> int:
    return {"d": stat.S_IFDIR, "s": stat.S_IFLNK}.get(node.kind, stat.S_IFREG)


#: ``renameat2`` flags, which mfusepy drops: kept here so ``mv -n`` never replaces a file.
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
#: What ``utimensat`` gives for "now" and "leave as it is", in a timespec's nanoseconds.
_UTIME_NOW, _UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


@dataclass(frozen=True)
class Serving:
    """What a serving process is given (pickled on its standard input, so credentials never
    touch the disk): the root's merged manifest and where it is mounted, the session's cache,
    the root's layer folder, and the bucket the objects are in."""

    mountpoint: str
    manifest: str
    cache: str
    cache_limit: int
    layer: str
    bucket: str
    root_prefix: str
    s3: S3Config
    allow_other: bool


def serve(spec: Serving) -> None:
    """Mounts the root and serves it until it is unmounted; says ``ready`` on standard output
    once the kernel has the mount (then nothing more is written there)."""
    bucket = Bucket(spec.bucket, spec.s3)
    where = layout(spec.root_prefix)
    cache = ObjectCache(spec.cache, bucket, where.data_key, limit=spec.cache_limit)
    tree = MountTree(spec.manifest, time.time_ns() // 1000)
    layer = os.open(spec.layer, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)

    def ready() -> None:
        os.write(1, b"ready\n")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    options: dict[str, Any] = {
        "fsname": f"jobattach:{os.getpid()}",  # names the serving process in mountinfo
        "subtype": "jobattach",
        "default_permissions": True,  # the kernel checks the modes the tree reports
        "auto_unmount": True,  # fusermount3 unmounts if this process dies
        "use_ino": True,
        # Every change comes through this mount, which the kernel sees: its cached names and
        # attributes stay right, and asking again each second costs a call into Python each.
        "entry_timeout": 60.0,
        "attr_timeout": 60.0,
    }
    if spec.allow_other:
        options["allow_other"] = True  # the job's user reads what the worker mounted
    import mfusepy  # loads libfuse3: only in the serving process

    class FUSE(mfusepy.FUSE):  # type: ignore[misc]  # mfusepy has no type hints
        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            # mfusepy drops renameat2's flags: passed on, so `mv -n` never replaces a file.
            decode = self.encoding, self.errors
            fs: RootFS = self.operations
            return fs.rename2(old.decode(*decode), new.decode(*decode), flags)

    fs = RootFS(tree, cache, layer, ready)
    FUSE(fs, spec.mountpoint, raw_fi=True, foreground=True, **options)


def main() -> None:
    spec = pickle.load(sys.stdin.buffer)
    sys.stdin.close()
    if not isinstance(spec, Serving):
        raise SystemExit("jobattach_host.mount: standard input holds no Serving")
    serve(spec)


if __name__ == "__main__":
    # Run as a module, this file is __main__: the spec was pickled as the package's Serving.
    from jobattach_host.mount import main as _main

    _main()
