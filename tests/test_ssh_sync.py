"""sync to and from a folder on a host over SSH: a real OpenSSH server on loopback, started
here with a throwaway host key and user key."""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobattach.cli import main
from jobattach.mirror import SyncStats, sync
from jobattach.progress import ProgressReport
from jobattach.ssh import SshConfig
from jobattach.sync_paths import SshPath
from jobattach_host.errors import (
    Cancelled,
    FileAccessError,
    FileChangedError,
    StorageError,
    ValidationError,
)

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class Server:
    port: int
    user: str
    key: str
    known_hosts: str  # records the server's host key for [127.0.0.1]:port

    def config(self, **kw: object) -> SshConfig:
        given: dict[str, object] = {
            "key_file": self.key,
            "use_agent": False,
            "known_hosts": self.known_hosts,
            "port": self.port,
            "connect_timeout": 10.0,
        }
        given.update(kw)
        return SshConfig(**given)  # type: ignore[arg-type]

    def at(self, path: Path) -> str:
        return f"{self.user}@127.0.0.1:{path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _banner(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Waits until the server answers with its SSH banner (or dies)."""
    while proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:  # not listening yet: poll again unless it exited
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
    raise RuntimeError(f"sshd exited: {proc.stderr.read().decode() if proc.stderr else ''}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host", "user"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
        )
    (d / "authorized_keys").write_text((d / "user.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
    )
    host_pub = (d / "host.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    if os.geteuid() == 0:  # sshd started by root wants its privilege separation folder
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _banner(port, proc)
        yield Server(port, getpass.getuser(), str(d / "user"), str(d / "known_hosts"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for i, (rel, data) in enumerate(sorted(files.items())):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.utime(p, ns=(1_700_000_000_123_456_789 + i * 1000, 1_700_000_000_123_456_789 + i))


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns // 1000)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


FILES = {"a.txt": b"alpha", "sub/b.bin": bytes(range(256)) * 40, "sub/deep/c": b""}


def _counts(stats: SyncStats) -> tuple[int, int, int]:
    return stats.processed_files, stats.skipped_files, stats.deleted_files


def test_up_then_down_gives_the_same_bytes_and_times(server: Server, tmp_path: Path) -> None:
    src, remote, back = tmp_path / "src", tmp_path / "remote", tmp_path / "back"
    _tree(src, FILES)
    cfg = server.config()
    assert _counts(sync(src, server.at(remote), ssh=cfg)) == (3, 0, 0)
    assert _files(remote) == _files(src)  # the same bytes, and times to the microsecond
    assert _counts(sync(server.at(remote), back, ssh=cfg)) == (3, 0, 0)
    assert _files(back) == _files(src)
    # unchanged: nothing moves either way
    assert _counts(sync(src, server.at(remote), ssh=cfg)) == (0, 3, 0)
    assert _counts(sync(server.at(remote), back, ssh=cfg)) == (0, 3, 0)
    assert not [p for p in remote.iterdir() if p.name not in {"a.txt", "sub"}]  # no temporaries


def test_changed_file_is_sent_again_and_deletes_go_both_ways(
    server: Server, tmp_path: Path
) -> None:
    src, remote, back = tmp_path / "src", tmp_path / "remote", tmp_path / "back"
    _tree(src, FILES)
    cfg = server.config()
    sync(src, server.at(remote), ssh=cfg)
    sync(server.at(remote), back, ssh=cfg)
    (src / "a.txt").write_bytes(b"ALPHA!")
    (src / "sub/deep/c").unlink()
    assert _counts(sync(src, server.at(remote), ssh=cfg, delete=True)) == (1, 1, 1)
    assert _files(remote) == _files(src)
    assert _counts(sync(server.at(remote), back, ssh=cfg, delete=True)) == (1, 1, 1)
    assert _files(back) == _files(src)


def test_by_hash_compares_contents(server: Server, tmp_path: Path) -> None:
    src, remote = tmp_path / "src", tmp_path / "remote"
    _tree(src, FILES)
    cfg = server.config()
    sync(src, server.at(remote), ssh=cfg)
    os.utime(remote / "a.txt", ns=(1, 1))  # same bytes, another time
    (remote / "sub/b.bin").write_bytes(bytes(len(FILES["sub/b.bin"])))  # same size, other bytes
    stats = sync(src, server.at(remote), ssh=cfg, by_hash=True)
    assert _counts(stats) == (1, 2, 0)
    assert (remote / "sub/b.bin").read_bytes() == FILES["sub/b.bin"]
    # and the other way: the host's files hashed here
    (src / "sub/b.bin").write_bytes(bytes(len(FILES["sub/b.bin"])))
    os.utime(src / "a.txt", ns=(2, 2))
    stats = sync(server.at(remote), src, ssh=cfg, by_hash=True)
    assert _counts(stats) == (1, 2, 0)
    assert (src / "sub/b.bin").read_bytes() == FILES["sub/b.bin"]


def test_include_exclude_and_dry_run(server: Server, tmp_path: Path) -> None:
    src, remote = tmp_path / "src", tmp_path / "remote"
    _tree(src, FILES)
    cfg = server.config()
    dry = sync(src, server.at(remote), ssh=cfg, dry_run=True)
    assert (dry.processed_files, dry.dry_run) == (3, True)
    assert not remote.exists()  # a dry run makes not even the folder
    with pytest.raises(FileAccessError, match="source directory does not exist"):
        sync(server.at(remote), tmp_path / "back", ssh=cfg)
    sync(src, server.at(remote), ssh=cfg, include="sub/**", exclude="*.bin")
    assert sorted(_files(remote)) == ["sub/deep/c"]


def test_cancelled_by_the_callback(server: Server, tmp_path: Path) -> None:
    src, remote = tmp_path / "src", tmp_path / "remote"
    _tree(src, FILES)
    with pytest.raises(Cancelled):
        sync(src, server.at(remote), ssh=server.config(), progress_callback=lambda r: False)
    assert _files(remote) == {}


def test_unknown_host_key(server: Server, tmp_path: Path) -> None:
    src, remote = tmp_path / "src", tmp_path / "remote"
    _tree(src, FILES)
    empty = tmp_path / "new" / "known_hosts"  # strict reads nothing there; accept-new makes it
    with pytest.raises(StorageError, match="not in"):
        sync(src, server.at(remote), ssh=server.config(known_hosts=str(empty)))
    assert not remote.exists()
    # insecure takes any key and records none
    assert (
        sync(
            src,
            server.at(remote),
            ssh=server.config(known_hosts=str(empty), host_key_policy="insecure"),
        ).processed_files
        == 3
    )
    assert not empty.exists()
    # accept-new records it; strict then trusts it
    sync(
        src,
        server.at(remote),
        ssh=server.config(known_hosts=str(empty), host_key_policy="accept-new"),
    )
    assert f"[127.0.0.1]:{server.port}" in empty.read_text()
    stats = sync(src, server.at(remote), ssh=server.config(known_hosts=str(empty)))
    assert stats.skipped_files == 3
    # a key that differs from the recorded one is refused
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = (tmp_path / "other.pub").read_text().split()[:2]
    empty.write_text(f"[127.0.0.1]:{server.port} {kind} {key}\n")
    with pytest.raises(StorageError, match="not the one"):
        sync(
            src,
            server.at(remote),
            ssh=server.config(known_hosts=str(empty), host_key_policy="accept-new"),
        )


def test_remote_symlinks_are_never_listed_nor_written_through(
    server: Server, tmp_path: Path
) -> None:
    src, remote, outside = tmp_path / "src", tmp_path / "remote", tmp_path / "outside"
    _tree(src, {"f": b"new", "link/x": b"new x"})
    outside.mkdir()
    (outside / "f").write_bytes(b"keep")
    remote.mkdir()
    (remote / "f").symlink_to(outside / "f")
    (remote / "link").symlink_to(outside)
    back = tmp_path / "back"
    stats = sync(server.at(remote), back, ssh=server.config())
    assert stats.total_files == 0  # neither symlink is listed as a file
    with pytest.raises(StorageError, match="symlink"):
        sync(src, server.at(remote), ssh=server.config())
    assert (outside / "f").read_bytes() == b"keep"
    assert sorted(p.name for p in outside.iterdir()) == ["f"]  # nothing written through link
    # the file symlink was replaced by the file, not followed
    assert not (remote / "f").is_symlink()
    assert (remote / "f").read_bytes() == b"new"


def test_cli(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, remote = tmp_path / "src", tmp_path / "remote"
    _tree(src, FILES)
    args = [
        "--ssh-port",
        str(server.port),
        "--ssh-key",
        server.key,
        "--ssh-known-hosts",
        server.known_hosts,
    ]
    assert main(["sync", str(src), f"{server.user}@127.0.0.1:{remote}", *args]) == 0
    assert _files(remote) == _files(src)
    url = f"ssh://{server.user}@127.0.0.1:{server.port}{remote}"
    assert main(["sync", url, str(tmp_path / "back"), *args[2:]]) == 0
    assert _files(tmp_path / "back") == _files(src)


def test_the_sftp_walk_lists_as_find_does_to_the_second(server: Server, tmp_path: Path) -> None:
    """Hosts without GNU find are walked over SFTP: the same files, times in whole seconds."""
    from jobattach.ssh import connect
    from jobattach.sync_paths import parse_path

    remote = tmp_path / "remote"
    _tree(remote, FILES)
    (remote / "sub/link").symlink_to(remote / "a.txt")
    (remote / "dirlink").symlink_to(remote / "sub")
    where = parse_path(server.at(remote))
    assert isinstance(where, SshPath)
    with connect(where, server.config(), source=True) as side:
        found = side.listing()
        walked = side._walk()
    assert sorted(found) == sorted(FILES)
    assert walked == {p: (s, m // 1_000_000 * 1_000_000, c) for p, (s, m, c) in found.items()}


def test_cancelled_in_the_middle_of_a_file_leaves_nothing_partial(
    server: Server, tmp_path: Path
) -> None:
    src, remote, back = tmp_path / "src", tmp_path / "remote", tmp_path / "back"
    _tree(src, {"big": b"\1" * (64 << 20)})
    cfg = server.config()
    seen: list[ProgressReport] = []

    def stop_midway(report: ProgressReport) -> bool:
        seen.append(report)
        return not 0 < report.processed_bytes < report.total_bytes

    with pytest.raises(Cancelled):
        sync(src, server.at(remote), ssh=cfg, progress_callback=stop_midway)
    assert list(remote.iterdir()) == []  # neither the file nor its temporary
    sync(src, server.at(remote), ssh=cfg)
    with pytest.raises(Cancelled):
        sync(server.at(remote), back, ssh=cfg, progress_callback=stop_midway)
    assert list(back.iterdir()) == []  # nor a staging folder
    assert [r.phase for r in seen if 0 < r.processed_bytes < r.total_bytes] == [
        "uploading",
        "downloading",
    ]


def test_no_server_and_no_paramiko_are_named(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    _tree(src, FILES)
    closed = server.config(port=_free_port())
    with pytest.raises(StorageError, match="cannot connect on port"):
        sync(src, server.at(tmp_path / "remote"), ssh=closed)
    monkeypatch.setitem(sys.modules, "paramiko", None)  # as if the ssh extra were missing
    with pytest.raises(ValidationError, match=r"pip install jobattach\[ssh\]"):
        sync(src, server.at(tmp_path / "remote"), ssh=server.config())


def test_a_relative_path_is_below_the_users_home(server: Server, tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src, FILES)
    name = f"jobattach-ssh-test-{tmp_path.name}"
    home = Path(pwd.getpwnam(server.user).pw_dir)
    try:
        sync(src, f"{server.user}@127.0.0.1:{name}/sub", ssh=server.config())
        assert _files(home / name / "sub") == _files(src)
    finally:
        shutil.rmtree(home / name, ignore_errors=True)


def test_a_file_changed_after_listing_is_not_sent(server: Server, tmp_path: Path) -> None:
    src, remote = tmp_path / "src", tmp_path / "remote"
    _tree(src, FILES)

    def change_once(report: ProgressReport) -> bool:
        if report.processed_files == 0:  # listed, not sent yet
            (src / "a.txt").write_bytes(b"longer than it was")
        return True

    with pytest.raises(FileChangedError, match=r"a\.txt"):
        sync(src, server.at(remote), ssh=server.config(), progress_callback=change_once)
    assert sorted(_files(remote)) == ["sub/b.bin", "sub/deep/c"]  # the others, and no temporary
    assert sorted(p.name for p in remote.iterdir()) == ["sub"]
