"""The sides of a :func:`jobattach.sync`, as :func:`parse_path` reads them, and the settings
of the remote ones.

- ``s3://bucket/prefix``: :class:`S3Path`
- ``gs://bucket/prefix``: :class:`GcsPath`
- ``ssh://[user@]host[:port]/path`` and ``[user@]host:path`` (scp's form): :class:`SshPath`
- anything else: a local directory, :class:`LocalPath` (``C:\\data`` and ``./a:b`` too)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union
from urllib.parse import unquote, urlsplit

from jobattach_host.errors import ValidationError


@dataclass(frozen=True)
class S3Path:
    """An S3 prefix (empty, or ending in ``/``) in a bucket."""

    bucket: str
    prefix: str

    def key(self, rel: str) -> str:
        """The object key of the relative path ``rel`` below this prefix."""
        return f"{self.prefix}{rel}"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class GcsPath:
    """A Google Cloud Storage prefix (empty, or ending in ``/``) in a bucket."""

    bucket: str
    prefix: str

    def key(self, rel: str) -> str:
        """The object name of the relative path ``rel`` below this prefix."""
        return f"{self.prefix}{rel}"

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class SshPath:
    """A directory on a host reached over SSH."""

    host: str
    path: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{who}{self.host}{port}{self.path}"


@dataclass(frozen=True)
class LocalPath:
    """A local directory."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


#: Either side of a :func:`sync`, as :func:`parse_path` reads it.
SyncPath = Union[S3Path, GcsPath, SshPath, LocalPath]

#: scp's ``[user@]host:path``: a host of more than one character (``C:`` is a drive), no
#: ``/`` before the colon.
_SCP = re.compile(
    r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]{2,}|\[[0-9A-Fa-f:.]+\]):(?P<path>.*)$"
)


def parse_path(text: str | os.PathLike[str]) -> SyncPath:
    """The side of a sync that ``text`` names (see the module's doc); a bucket, host or port
    that is missing or malformed is a ``ValidationError``."""
    s = os.fspath(text)
    for scheme, kind in (("s3://", S3Path), ("gs://", GcsPath)):
        if s.startswith(scheme):
            bucket, _, prefix = s[len(scheme) :].partition("/")
            if not bucket:
                raise ValidationError(f"{s!r} names no bucket")
            prefix = prefix.strip("/")
            return kind(bucket, f"{prefix}/" if prefix else "")
    if s.startswith("ssh://"):
        return _ssh_url(s)
    found = _SCP.match(s) if not s.startswith((".", "/")) else None
    if found:
        path = found["path"] or "."
        return SshPath(found["host"].strip("[]"), path, found["user"])
    return LocalPath(Path(s))


def _ssh_url(s: str) -> SshPath:
    parts = urlsplit(s)
    try:
        port = parts.port
    except ValueError:
        raise ValidationError(f"{s!r}: the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValidationError(f"{s!r} names no host")
    return SshPath(
        parts.hostname,
        unquote(parts.path) or "/",
        unquote(parts.username) if parts.username else None,
        port,
    )
