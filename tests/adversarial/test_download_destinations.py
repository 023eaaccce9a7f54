"""A destination whose own path is not UTF-8 (Linux allows any bytes): the plan names its
conflicts by that path exactly, though a WIT string cannot carry such a name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jobattach import (
    AssetReferences,
    ManifestLocation,
    S3Config,
    S3Location,
    ValidationError,
    submit_bundle_attachments,
    sync_inputs,
)
from jobattach_host.storage import Bucket
from jobattach_host.sync import session_root_name


def test_conflicts_in_a_destination_not_named_in_utf8(aws_env: S3Config, tmp_path: Path) -> None:
    Bucket("odd-destination", aws_env).create()
    where = S3Location("odd-destination", "JA")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    (src / "b.txt").write_bytes(b"b")
    files = [str(src / "a.txt"), str(src / "b.txt")]
    submitted = submit_bundle_attachments(
        "us-west-2",
        where,
        ManifestLocation("farm-1", "queue-1"),
        AssetReferences(files),
        s3=aws_env,
    )
    session = tmp_path / "session-\udcff"  # the byte 0xff, as Python spells it
    first = sync_inputs(where, submitted.attachments, session, s3=aws_env)
    assert first.processed_files == 2
    dest = session / session_root_name(str(src))
    assert os.path.exists(os.fsencode(dest / "a.txt"))
    (dest / "a.txt").write_bytes(b"edited")
    skipped = sync_inputs(where, submitted.attachments, session, on_conflict="skip", s3=aws_env)
    assert skipped.conflicts == {"skipped": [str(dest / "a.txt")]}
    with pytest.raises(ValidationError, match="local files differ from the job's inputs: "):
        sync_inputs(where, submitted.attachments, session, on_conflict="error", s3=aws_env)
    restored = sync_inputs(where, submitted.attachments, session, s3=aws_env)
    assert restored.conflicts == {"overwritten": [str(dest / "a.txt")]}
    assert (dest / "a.txt").read_bytes() == b"a"
