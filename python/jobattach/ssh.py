"""A folder on a host reached over SSH as a side of :func:`jobattach.sync` (paramiko: the
``ssh`` extra, ``pip install jobattach[ssh]``).

- Listing: one remote ``find`` (GNU) gives every regular file's size and modification time
  to the nanosecond without following a symlink; where the host has no GNU ``find``, an SFTP
  walk (``readdir`` attributes, symlinks never followed) gives whole seconds.
- Writing: each file goes to a temporary internal name in its own remote folder, gets its
  source's modification time (``touch -h``, to the nanosecond; SFTP's whole seconds where
  there is no ``touch``), and is renamed over its target, so a symlink standing there is
  replaced, never written through. A folder on the way that is a symlink is refused.
- Hashing (``by_hash=True``): the files to compare are downloaded into a private temporary
  folder and hashed here, as the component hashes local files (xxh3-128 is in no standard
  remote tool).
- Reading into a local directory goes through its folder handles and a staging folder, as
  S3 downloads do.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from jobattach_host import engine, hash_files
from jobattach_host.destination import Staging, Tree, open_root
from jobattach_host.errors import FileAccessError, FileChangedError, StorageError, ValidationError

from .sync_paths import LocalPath, SshPath

if TYPE_CHECKING:
    import paramiko

    from jobattach_host.upload import Tally

    from .mirror import Listed

#: What an unknown host key meets: refused ("strict"), recorded in ``known_hosts`` and
#: trusted ("accept-new"), or accepted without any check ("insecure": anyone on the path
#: can read and change what is synced).
HostKeyPolicy = Literal["strict", "accept-new", "insecure"]

_CHUNK = 1 << 20

#: Told of each chunk's bytes as a file moves; False: cancelled, stop.
Moved = Callable[[int], bool]


@dataclass(frozen=True)
class SshConfig:
    """How :func:`jobattach.sync` reaches and trusts a host."""

    #: A private key file (default: the agent, then none).
    key_file: str | None = None
    #: Offer the keys of the SSH agent (``SSH_AUTH_SOCK``).
    use_agent: bool = True
    #: The known_hosts file (default: ``~/.ssh/known_hosts``).
    known_hosts: str | None = None
    #: See :data:`HostKeyPolicy`; a key that differs from the one recorded is always refused.
    host_key_policy: HostKeyPolicy = "strict"
    #: The port and user, over those of the path (default: 22, and the local user).
    port: int | None = None
    user: str | None = None
    #: Seconds to wait for the connection, the server's banner and authentication.
    connect_timeout: float = 30.0


def _paramiko() -> Any:
    try:
        import paramiko
    except ImportError:
        raise ValidationError(
            "syncing over SSH needs paramiko: pip install jobattach[ssh]"
        ) from None
    return paramiko


@contextlib.contextmanager
def connect(
    where: SshPath, config: SshConfig, source: bool, dry_run: bool = False
) -> Iterator[SshRemote]:
    """``where`` open over SSH and SFTP; a missing folder is refused as a ``source``, made as
    a destination (unless ``dry_run``: then it lists empty)."""
    pm = _paramiko()
    client = pm.SSHClient()
    try:
        _trust(pm, client, config)
        port = config.port or where.port or 22
        try:
            client.connect(
                where.host,
                port=port,
                username=config.user or where.user or getpass.getuser(),
                key_filename=config.key_file,
                allow_agent=config.use_agent,
                look_for_keys=False,
                timeout=config.connect_timeout,
                banner_timeout=config.connect_timeout,
                auth_timeout=config.connect_timeout,
            )
        except pm.BadHostKeyException as e:
            raise StorageError(
                f"{where}: the host's key is not the one known_hosts records for it ({e})"
            ) from None
        except (pm.SSHException, OSError) as e:
            raise StorageError(f"{where}: cannot connect on port {port}: {e}") from None
        sftp = client.open_sftp()
        try:
            yield SshRemote(where, client, sftp, _root(sftp, where, source, dry_run))
        finally:
            sftp.close()
    finally:
        client.close()


def _trust(pm: Any, client: paramiko.SSHClient, config: SshConfig) -> None:
    if config.host_key_policy == "insecure":
        client.set_missing_host_key_policy(cast("paramiko.MissingHostKeyPolicy", _AcceptAny()))
        return
    known = config.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
    if config.host_key_policy == "accept-new":
        Path(known).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        Path(known).touch(exist_ok=True)  # load_host_keys makes it the file new keys go to
        client.load_host_keys(known)
        client.set_missing_host_key_policy(pm.AutoAddPolicy())
        return
    if config.host_key_policy != "strict":
        raise ValidationError(f"unknown host key policy {config.host_key_policy!r}")
    if os.path.exists(known):
        client.get_host_keys().load(known)  # read only: strict never writes it
    client.set_missing_host_key_policy(cast("paramiko.MissingHostKeyPolicy", _Refuse(known)))


class _Refuse:
    def __init__(self, known: str) -> None:
        self.known = known

    def missing_host_key(self, client: object, hostname: str, key: object) -> None:
        raise StorageError(
            f"the host key of {hostname} is not in {self.known}: add it (ssh-keyscan), or"
            " choose the host key policy accept-new"
        )


class _AcceptAny:
    def missing_host_key(self, client: object, hostname: str, key: object) -> None:
        return None


def _root(sftp: paramiko.SFTPClient, where: SshPath, source: bool, dry_run: bool) -> str:
    """The remote folder's real path (see :func:`connect`); "" for one a dry run lacks."""
    try:
        root = sftp.normalize(where.path)
        st = sftp.stat(root)
    except OSError:
        if source:
            raise FileAccessError("the source directory does not exist", path=str(where)) from None
        if dry_run:
            return ""  # nothing there: an empty listing
        path = "" if where.path.startswith("/") else sftp.normalize(".")
        for part in where.path.split("/"):
            path = f"{path}/{part}" if part else path
            if part:
                with contextlib.suppress(OSError):
                    sftp.mkdir(path)
        try:
            root = sftp.normalize(where.path)
            st = sftp.stat(root)
        except OSError as e:
            raise FileAccessError(f"cannot make the folder: {e}", path=str(where)) from None
    if not stat.S_ISDIR(st.st_mode or 0):
        raise FileAccessError("is not a directory", path=str(where))
    return root


def _mover(tally: Tally, item: int) -> Moved:
    def moved(nbytes: int) -> bool:
        tally.moved(item, nbytes)
        return not tally.cancelled.is_set()

    return moved


class SshRemote:
    """A folder on a host as a side of a sync (see the module's doc)."""

    def __init__(
        self,
        where: SshPath,
        client: paramiko.SSHClient,
        sftp: paramiko.SFTPClient,
        root: str,
    ) -> None:
        self.where, self.client, self.sftp, self.root = where, client, sftp, root
        self._folders: set[str] = set()  # remote folders made or seen to be real folders

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def _run(self, command: str) -> bytes | None:
        """The output of ``command`` on the host; None when it fails."""
        _, out, err = self.client.exec_command(command)
        drain = threading.Thread(target=err.read, daemon=True)  # unread, it would stall out
        drain.start()
        data: bytes = out.read()
        drain.join()
        return data if out.channel.recv_exit_status() == 0 else None

    def listing(self) -> dict[str, Listed]:
        if not self.root:
            return {}
        found = self._run(f"find {shlex.quote(self.root)} -type f -printf '%P\\0%s\\0%T@\\0'")
        rows = self._find_rows(found) if found is not None else self._walk()
        kinds = engine.internal_kinds([p.rpartition("/")[2] for p in rows])
        return {p: v for (p, v), kind in zip(rows.items(), kinds) if kind != "temporary"}

    @staticmethod
    def _find_rows(found: bytes) -> dict[str, Listed]:
        fields = found.split(b"\0")[:-1]
        rows: dict[str, Listed] = {}
        for i in range(0, len(fields) - 2, 3):
            name, size, mtime = fields[i : i + 3]
            seconds, _, frac = mtime.decode().partition(".")
            mtime_us = int(seconds) * 1_000_000 + int((frac + "000000")[:6])
            with contextlib.suppress(UnicodeDecodeError):  # a name no manifest can carry
                rows[name.decode()] = (int(size), mtime_us, None)
        return rows

    def _walk(self) -> dict[str, Listed]:
        rows: dict[str, Listed] = {}
        todo = [""]
        while todo:
            rel = todo.pop()
            for a in self.sftp.listdir_attr(self._path(rel) if rel else self.root):
                sub = f"{rel}/{a.filename}" if rel else a.filename
                if a.filename in (".", "..") or "/" in a.filename:
                    continue
                if stat.S_ISDIR(a.st_mode or 0):
                    todo.append(sub)
                elif stat.S_ISREG(a.st_mode or 0):
                    rows[sub] = (a.st_size or 0, (a.st_mtime or 0) * 1_000_000, None)
        return rows

    def digests(self, paths: list[str]) -> dict[str, str]:
        """Downloaded into a private temporary folder and hashed there (see the module's doc)."""
        if not paths:
            return {}
        with tempfile.TemporaryDirectory() as tmp:
            for rel in paths:
                target = Path(tmp, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    self._fetch(rel, out, None)
            return dict(zip(paths, hash_files(tmp, paths)))

    def _fetch(self, rel: str, out: IO[bytes], moved: Moved | None) -> bool:
        """Copies the remote regular file ``rel`` into ``out``; False when ``moved`` said to
        stop."""
        path = self._path(rel)
        try:
            if not stat.S_ISREG(self.sftp.lstat(path).st_mode or 0):
                raise StorageError("is no longer a regular file", path=self._shown(rel))
            with self.sftp.open(path, "rb") as f:
                f.prefetch()
                while chunk := f.read(_CHUNK):
                    out.write(chunk)
                    if moved is not None and not moved(len(chunk)):
                        return False
        except OSError as e:
            raise StorageError(f"cannot read: {e}", path=self._shown(rel)) from None
        return True

    def _shown(self, rel: str) -> str:
        return f"{self.where.user + '@' if self.where.user else ''}{self.where.host}:" + (
            self._path(rel)
        )

    def download(
        self, dst: LocalPath, paths: list[str], items: dict[str, Listed], tally: Tally
    ) -> None:
        """Each file into this process's staging folder, then, of its listed size, renamed
        into place through the handles of its folders with the remote file's time."""
        avoid = [p.partition("/")[0] for p in paths]
        with open_root(dst.path) as root, Tree(root) as tree, Staging(root, avoid) as staging:
            for i, rel in enumerate(paths):
                if tally.cancelled.is_set():
                    return
                size, mtime_us, _ = items[rel]
                with staging.create(str(i))() as out:
                    if not self._fetch(rel, out, _mover(tally, i)):
                        return  # cancelled: the staging folder goes, and what it held
                got = staging.size(str(i))
                if got != size:
                    why = f"the file has {got} bytes where its listing says {size}"
                    raise FileChangedError(why, path=self._shown(rel))
                found = tree.parent(rel, create=True)
                assert found is not None  # made when missing
                staging.place(str(i), *found, mtime_us * 1000, copy=False)
                tally.add(size, i)

    def upload(
        self,
        src: LocalPath,
        paths: list[str],
        digests: dict[str, str],
        items: dict[str, Listed],
        tally: Tally,
    ) -> None:
        """Each local file read through the handles of its folders, written under a temporary
        name in its remote folder, given its time, and renamed over its target."""
        from .mirror import as_listed, read_local, refuse_changed

        changed: list[str] = []
        with open_root(src.path) as root, Tree(root) as tree:
            for i, rel in enumerate(paths):
                if tally.cancelled.is_set():
                    return
                folder = self._folder(rel)
                temp = f"{folder}/{engine.internal_name('temporary')}"
                with read_local(tree, rel, src.path / rel) as (fd, before):
                    if not self._send(fd, temp, _mover(tally, i)):
                        self._remove(temp)  # cancelled: nothing partial stays
                        return
                    after = os.fstat(fd)
                if not as_listed(after, items[rel]) or before.st_size != after.st_size:
                    self._remove(temp)
                    changed.append(str(src.path / rel))
                    continue
                self._finish(temp, self._path(rel), after.st_mtime_ns)
                tally.add(after.st_size, i)
        refuse_changed(changed, "sent")

    def _folder(self, rel: str) -> str:
        """The remote folder of ``rel``, made where missing; a symlink or file on the way is
        refused (written through, it would lead out of the root)."""
        folder = self.root
        for part in rel.split("/")[:-1]:
            folder = f"{folder}/{part}"
            if folder in self._folders:
                continue
            try:
                st = self.sftp.lstat(folder)
            except FileNotFoundError:
                self.sftp.mkdir(folder)
            else:
                if not stat.S_ISDIR(st.st_mode or 0):
                    raise StorageError(
                        "is a symlink or file where the sync puts a folder; not written through",
                        path=f"{self.where.host}:{folder}",
                    )
            self._folders.add(folder)
        return folder

    def _send(self, fd: int, temp: str, moved: Moved) -> bool:
        """Writes ``fd`` to the new remote file ``temp``; False when ``moved`` said to stop."""
        try:
            with self.sftp.open(temp, "wx") as out:
                out.set_pipelined(True)
                while chunk := os.read(fd, _CHUNK):
                    out.write(chunk)
                    if not moved(len(chunk)):
                        return False
        except OSError as e:
            self._remove(temp)
            raise StorageError(f"cannot write: {e}", path=f"{self.where.host}:{temp}") from None
        return True

    def _finish(self, temp: str, target: str, mtime_ns: int) -> None:
        """Gives ``temp`` its time and renames it over ``target`` (a symlink there is
        replaced, not followed)."""
        seconds, ns = divmod(mtime_ns, 1_000_000_000)
        touched = self._run(f"touch -h -c -m -d @{seconds}.{ns:09d} -- {shlex.quote(temp)}")
        try:
            if touched is None:  # no GNU touch: SFTP's whole seconds
                atime = self.sftp.lstat(temp).st_atime or seconds
                self.sftp.utime(temp, (atime, seconds))
            self.sftp.posix_rename(temp, target)
        except OSError as e:
            self._remove(temp)
            raise StorageError(f"cannot write: {e}", path=f"{self.where.host}:{target}") from None

    def _remove(self, path: str) -> None:
        with contextlib.suppress(OSError):
            self.sftp.remove(path)

    def delete(self, paths: list[str]) -> None:
        for rel in paths:
            try:
                self.sftp.remove(self._path(rel))  # a symlink itself, never what it names
            except FileNotFoundError:
                continue  # gone already is what --delete wanted
            except OSError as e:
                raise StorageError(f"cannot delete: {e}", path=self._shown(rel)) from None


__all__ = ["HostKeyPolicy", "SshConfig"]
