"""Every name the official encoder carries comes through; what a destination cannot hold is
refused before anything is written; manifests over the limit are refused naming it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from conftest import official_upload
from jobattach import (
    AssetReferences,
    ManifestLocation,
    S3Config,
    S3Location,
    ValidationError,
    create_manifest,
    submit_bundle_attachments,
    sync_inputs,
)
from jobattach.manifest import Manifest, merge_manifests
from jobattach.mirror import sync
from jobattach_host.storage import Bucket
from jobattach_host.sync import refused_entries, session_root_name

#: Names a POSIX file system holds, as bytes, with the content each file gets.
HOSTILE = [
    b"back\\slash.txt",
    b"dir\\with\\backslashes/inner.txt",
    b"c:colon.txt",
    b"tab\there.txt",
    b"new\nline.txt",
    b"\x01ctrl-\x1f.txt",
    b"del-\x7f.txt",
    b"bad-\xff.bin",
    b"latin1-\xe9.txt",
    b"truncated-\xe2\x82.txt",
    "caf\u00e9.txt".encode(),  # NFC and NFD of one name, side by side
    "cafe\u0301.txt".encode(),
    b"Shot.exr",
    b"shot.exr",
    b"CON.txt",
    b"trailing.",
    b"trailing ",
    b'"quoted" <a|b> *?.txt',
    "emoji \U0001f600.txt".encode(),
    b" leading space",
]
WHERE = ManifestLocation("farm-1", "queue-1")


def _write_tree(root: Path) -> list[str]:
    """Writes the hostile names below ``root``; returns the inputs as the official tools take
    them (str, bytes that are not UTF-8 as lone surrogates)."""
    inputs = []
    for i, name in enumerate(HOSTILE):
        path = os.path.join(os.fsencode(root), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"content of " + name)
        os.utime(path, ns=(1_700_000_000_123_456_789 + i, 1_700_000_000_123_456_789 + i))
        inputs.append(os.fsdecode(path))
    return sorted(inputs)


def _files(root: Path) -> dict[bytes, tuple[bytes, int]]:
    """Every file below ``root`` by its name's bytes: content and mtime in µs."""
    out = {}
    top = os.fsencode(root)
    for dirpath, _, names in os.walk(top):
        for name in names:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, top)] = (f.read(), os.stat(full).st_mtime_ns // 1000)
    return out


@pytest.fixture
def bucket(aws_env: S3Config, request: pytest.FixtureRequest) -> Bucket:
    b = Bucket(f"names-{abs(hash(request.node.name)) % 10**8}", aws_env)
    b.create()
    return b


@pytest.fixture
def official(bucket: Bucket, tmp_path: Path) -> dict[str, Any]:
    """The hostile tree, submitted by the official deadline package."""
    root = tmp_path / "submitted"
    inputs = _write_tree(root)
    attachments = official_upload(bucket.name, "JA", inputs, tmp_path, "farm-1", "queue-1")
    (props,) = attachments.manifests
    manifest, _ = bucket.get_bytes(f"JA/Manifests/{props.inputManifestPath}")
    return {"root": root, "attachments": attachments.to_dict(), "manifest": manifest}


def test_a_job_the_official_tools_submitted_downloads_byte_for_byte(
    official: dict[str, Any], bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    root: Path = official["root"]
    assert b"back\\\\slash.txt" in official["manifest"]  # the official encoder kept every name
    assert len(json.loads(official["manifest"])["paths"]) == len(HOSTILE)
    session = tmp_path / "session"
    result = sync_inputs(
        S3Location(bucket.name, "JA"), official["attachments"], session, s3=aws_env
    )
    assert result.processed_files == len(HOSTILE)
    dest = session / session_root_name(str(root))
    assert _files(dest) == _files(root)  # names, contents and mtimes, byte for byte


def test_our_snapshot_and_submission_are_the_official_bytes(
    official: dict[str, Any], bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    root: Path = official["root"]
    snapshot = create_manifest(root, cache=False)
    assert snapshot.manifest.encode() == official["manifest"]
    assert not snapshot.skipped
    inputs = sorted(os.fsdecode(os.path.join(os.fsencode(root), n)) for n in HOSTILE)
    ours = submit_bundle_attachments(
        "us-west-2",
        S3Location(bucket.name, "Ours"),
        WHERE,
        AssetReferences(inputs),
        s3=aws_env,
        hash_cache=False,
        check_cache=False,
    )
    (props,) = ours.attachments["manifests"]
    submitted, _ = bucket.get_bytes(f"Ours/Manifests/{props['inputManifestPath']}")
    assert submitted == official["manifest"]


def test_windows_and_macos_refuse_what_they_cannot_hold_naming_every_entry(
    official: dict[str, Any],
) -> None:
    manifest = official["manifest"]
    assert refused_entries(manifest, "linux") == []
    on_windows = dict(refused_entries(manifest, "windows"))
    names = {os.fsdecode(n) for n in HOSTILE}
    holdable_on_windows = {
        "caf\u00e9.txt",
        "cafe\u0301.txt",
        "emoji \U0001f600.txt",
        "del-\x7f.txt",
    }
    assert set(on_windows) == names - holdable_on_windows - {" leading space"}
    assert "holds '\\\\'" in on_windows["back\\slash.txt"]
    assert "reserves" in on_windows["CON.txt"]
    assert "differ only in case" in on_windows["shot.exr"]
    assert "no Windows spelling" in on_windows["bad-\udcff.bin"]
    assert "control character U+000A" in on_windows["new\nline.txt"]
    on_macos = dict(refused_entries(manifest, "macos"))
    not_utf8 = {"bad-\udcff.bin", "latin1-\udce9.txt", "truncated-\udce2\udc82.txt"}
    one_name = {"caf\u00e9.txt", "cafe\u0301.txt", "Shot.exr", "shot.exr"}
    assert set(on_macos) == not_utf8 | one_name
    assert "Unicode normalization" in on_macos["cafe\u0301.txt"]


def _manifest(paths: dict[str, int]) -> bytes:
    """A v2023-03-03 manifest of files named ``paths``, each of one byte with that mtime."""
    entries = [
        {"hash": "0" * 31 + "1", "mtime": mtime, "path": p, "size": 1}
        for p, mtime in sorted(paths.items())
    ]
    doc = {"hashAlg": "xxh128", "manifestVersion": "2023-03-03", "paths": entries}
    return json.dumps({**doc, "totalSize": len(entries)}, sort_keys=True).encode()


def test_a_download_this_system_cannot_hold_is_refused_before_anything_is_written(
    official: dict[str, Any], bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    # Names and times Linux cannot hold, among ones it can: every bad one is named.
    bad = {
        "x" * 256: 0,  # one byte over NAME_MAX
        "lone-\ud800": 0,  # a surrogate that stands for no byte
        "\udcc3\udca9": 0,  # the bytes of é, which the official encoder writes as é
        "too-late": 2**62,  # past what a 64-bit count of nanoseconds holds
    }
    manifest = _manifest({**bad, "fine.txt": 1_700_000_000_000_000})
    bucket.put_bytes("JA/Manifests/evil_input", manifest)
    (props,) = official["attachments"]["manifests"]
    attachments = {"manifests": [{**props, "inputManifestPath": "evil_input"}]}
    session = tmp_path / "session"
    with pytest.raises(ValidationError, match="4 of the files to download cannot be") as err:
        sync_inputs(S3Location(bucket.name, "JA"), attachments, session, s3=aws_env)
    for name in ["x" * 256, "lone-\\ud800", "\\udcc3\\udca9", "too-late"]:
        assert name in str(err.value)
    assert "256 bytes long" in str(err.value)
    assert "outside what Linux file systems store exactly" in str(err.value)
    assert not session.exists()


def test_a_mirror_download_this_system_cannot_hold_is_refused(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    bucket.put_bytes("m/ok.txt", b"ok")
    bucket.put_bytes("m/back\\slash.txt", b"a POSIX name")
    bucket.put_bytes(f"m/{'y' * 256}", b"too long a name for Linux")
    dest = tmp_path / "dest"
    with pytest.raises(ValidationError, match=r"1 of the files to download .* 256 bytes long"):
        sync("s3://" + bucket.name + "/m", dest, s3=aws_env)
    assert not dest.exists()
    bucket.client.delete_object(Bucket=bucket.name, Key=f"m/{'y' * 256}")
    sync("s3://" + bucket.name + "/m", dest, s3=aws_env)
    assert (dest / "back\\slash.txt").read_bytes() == b"a POSIX name"


#: The limit the component names (component/src/formats.rs).
LIMIT = re.escape("125829120 bytes (120 MiB")


def _sized(n: int, name: str) -> str:
    """A manifest of ``n`` files named ``{name}{i}``, written with raw UTF-8 (as a decoder
    takes it; the canonical encoding escapes every non-ASCII unit as six bytes)."""
    rows = ",".join(
        f'{{"hash":"{i:032x}","mtime":1700000000000000,"path":"{name}{i}","size":1}}'
        for i in range(n)
    )
    doc = f'{{"hashAlg":"xxh128","manifestVersion":"2023-03-03","paths":[{rows}],"totalSize":{n}}}'
    return doc


def test_a_large_manifest_decodes_and_one_over_the_limit_is_refused() -> None:
    big = _sized(500_000, "shots/seq/frame.exr.")  # 52 MiB encoded
    assert len(Manifest.decode(big)) == 500_000
    # Text under the limit whose canonical encoding is over it: 40 MiB of é, 120 MiB escaped.
    escaped = _sized(70_000, "\u00e9" * 300)
    assert len(escaped.encode()) < 125829120
    with pytest.raises(ValidationError, match=rf"would be \d+ bytes, over the limit of {LIMIT}"):
        Manifest.decode(escaped)
    with pytest.raises(ValidationError, match=rf"is \d+ bytes, over the limit of {LIMIT}"):
        Manifest.decode(big + " " * (125829121 - len(big)))
    # Two that fit merge into one that would not.
    halves = [Manifest.decode(_sized(35_000, c * 300)) for c in "\u00e9\u00e8"]
    with pytest.raises(ValidationError, match=LIMIT):
        merge_manifests(halves)


def test_a_submission_over_the_limit_is_refused_before_anything_is_hashed_or_sent(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    # A character outside ASCII, and a name's byte that is not UTF-8, take six bytes each in
    # a manifest: 30,000 files whose paths are 2,000 such make a manifest of 135 MiB.
    root = tmp_path / "wide"
    deep = os.path.join(os.fsencode(root), *[("\u00e9" * 125).encode()] * 4)
    os.makedirs(deep)
    inputs = [str(root / "top.txt")]  # the root is the inputs' common directory
    (root / "top.txt").write_bytes(b"")
    for i in range(30_000):
        path = os.path.join(deep, b"\xfe" * 240 + str(i).encode())
        with open(path, "wb"):
            inputs.append(os.fsdecode(path))
    with pytest.raises(ValidationError, match=rf"would be \d+ bytes, over the limit of {LIMIT}"):
        create_manifest(root, cache=False)
    with pytest.raises(ValidationError, match=LIMIT):
        submit_bundle_attachments(
            "us-west-2",
            S3Location(bucket.name, "JA"),
            WHERE,
            AssetReferences(inputs),
            s3=aws_env,
            hash_cache=False,
            check_cache=False,
        )
    assert bucket.keys("JA/") == set()
