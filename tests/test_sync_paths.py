"""parse_path names every side a sync takes, typed; none is mistaken for a local path."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobattach import GcsPath, LocalPath, S3Path, SshPath, ValidationError, parse_path


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("s3://b/p/q", S3Path("b", "p/q/")),
        ("gs://b/p/q/", GcsPath("b", "p/q/")),
        ("gs://b", GcsPath("b", "")),
        ("ssh://ann@render-01:2222/srv/data", SshPath("render-01", "/srv/data", "ann", 2222)),
        ("ssh://render-01", SshPath("render-01", "/", None, None)),
        ("ssh://ann@[::1]:22/d", SshPath("::1", "/d", "ann", 22)),
        ("ann@render-01:/srv/data", SshPath("render-01", "/srv/data", "ann")),
        ("render-01:data", SshPath("render-01", "data")),
        ("render-01:", SshPath("render-01", ".")),
        ("/data/x:y", LocalPath(Path("/data/x:y"))),
        ("./a:b", LocalPath(Path("./a:b"))),
        ("C:\\data", LocalPath(Path("C:\\data"))),
        ("C:/data", LocalPath(Path("C:/data"))),
        ("relative/dir", LocalPath(Path("relative/dir"))),
    ],
)
def test_each_form_is_its_own_type(text: str, want: object) -> None:
    assert parse_path(text) == want


@pytest.mark.parametrize(
    ("text", "why"),
    [("gs:///x", "names no bucket"), ("ssh:///x", "names no host"), ("ssh://h:99999/x", "port")],
)
def test_malformed_remote_paths_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        parse_path(text)
