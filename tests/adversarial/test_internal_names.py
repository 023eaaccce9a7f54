"""A folder whose name is not UTF-8 beside a download's staging folder: the component decides
which names are internal, and a name that cannot cross to it is no internal name (it was a
crash when such names were sent)."""

from __future__ import annotations

import os
from pathlib import Path

from jobattach import S3Config, sync
from jobattach_host.storage import Bucket


def test_folders_not_named_in_utf8_beside_staging_folders(
    aws_env: S3Config, tmp_path: Path
) -> None:
    bucket = Bucket("internal-names", aws_env)
    bucket.create()
    src, dst = tmp_path / "src", tmp_path / "dst"
    for top in (src, dst):
        os.makedirs(os.path.join(os.fsencode(top), b"dir-\xff"))
    (src / "a.txt").write_bytes(b"a")
    (src / "dir-\udcff" / "b.txt").write_bytes(b"b")
    # Listing the source asks which of its top folders are staging folders.
    up = sync(src, "s3://internal-names/p", s3=aws_env)
    assert up.processed_files == 1
    assert up.unsupported == ["dir-\udcff/b.txt"]
    # Downloading makes a staging folder in dst, first looking for stale ones beside it.
    down = sync("s3://internal-names/p", dst, s3=aws_env)
    assert down.processed_files == 1
    assert sorted(os.listdir(os.fsencode(dst))) == [b"a.txt", b"dir-\xff"]
