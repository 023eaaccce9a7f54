"""Input directories and job bundles' asset references, submitted as the official ``deadline
bundle submit`` submits them (every file below an input directory is an input; one holding
no file, or missing, is a reference), against the local server; the manifests are compared
with the official uploader's for the same files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import official_upload
from jobattach import (
    AssetReferences,
    BundleSubmitOptions,
    ManifestLocation,
    S3Config,
    S3Location,
    ValidationError,
    read_asset_references,
    submit_bundle_attachments,
)
from jobattach_host.storage import Bucket

WHERE = ManifestLocation("farm-1", "queue-1")


@pytest.fixture
def bucket(aws_env: S3Config, request: pytest.FixtureRequest) -> Bucket:
    b = Bucket(f"indir-{abs(hash(request.node.name)) % 10**8}", aws_env)
    b.create()
    return b


def _shot(root: Path) -> list[str]:
    """A shot folder: nested files, a hidden one, an empty folder and a link to a folder
    (not followed, as os.walk does not); returns the files below it, by hand."""
    files = {
        "plates/p.0001.exr": b"1",
        "plates/p.0002.exr": b"2",
        ".hidden/cfg": b"c",
        "scene.ma": b"scene",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "empty").mkdir()
    (root / "linked").symlink_to(root / "plates")
    return sorted(str(root / rel) for rel in files)


def test_every_file_below_an_input_directory_is_an_input(
    bucket: Bucket, aws_env: S3Config, tmp_path: Path
) -> None:
    shot = tmp_path / "proj" / "shot"
    files = _shot(shot)
    empty = tmp_path / "proj" / "nothing-here"
    empty.mkdir()
    gone = tmp_path / "proj" / "gone"
    result = submit_bundle_attachments(
        None,
        S3Location(bucket.name, "JA"),
        WHERE,
        AssetReferences(input_directories=[str(shot), str(empty), str(gone)]),
        s3=aws_env,
    )
    assert result.statistics.total_files == len(files)
    (entry,) = result.attachments["manifests"]
    # The empty and the missing folder are references, as the official makes them: they
    # count in the root's choice.
    references = [str(empty), str(gone)]
    official = official_upload(
        bucket.name, "Official", files, tmp_path, "farm-1", "queue-1", references
    )
    (theirs,) = official.manifests
    assert entry["rootPath"] == theirs.rootPath == str(tmp_path / "proj")
    assert entry["inputManifestHash"] == theirs.inputManifestHash
    with pytest.raises(ValidationError, match=r"input directories do not exist.*gone"):
        submit_bundle_attachments(
            None,
            S3Location(bucket.name, "JA"),
            WHERE,
            AssetReferences(input_directories=[str(shot), str(gone)]),
            options=BundleSubmitOptions(require_paths_exist=True),
            s3=aws_env,
        )


def test_a_bundles_asset_references_are_read_in_either_format(tmp_path: Path) -> None:
    doc = {
        "assetReferences": {
            "inputs": {"filenames": ["/p/a.ma", "/p/./b.ma"], "directories": ["/p/tex/"]},
            "outputs": {"directories": ["/p/out"]},
            "referencedPaths": ["/p/ref"],
        }
    }
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "asset_references.json").write_text(json.dumps(doc))
    (tmp_path / "refs.yaml").write_text(
        "assetReferences:\n"
        "  inputs:\n"
        "    filenames: [/p/a.ma, /p/./b.ma]\n"
        "    directories:\n      - /p/tex/\n"
        "  outputs: {directories: [/p/out]}\n"
        "  referencedPaths: [/p/ref]\n"
    )
    want = AssetReferences(["/p/a.ma", "/p/b.ma"], ["/p/out"], ["/p/ref"], ["/p/tex"])
    assert read_asset_references(bundle) == want
    assert read_asset_references(tmp_path / "refs.yaml") == want
    (tmp_path / "bad.json").write_text(json.dumps({"assetReferences": {"inputs": []}}))
    with pytest.raises(ValidationError, match=r"assetReferences\.inputs must be an object"):
        read_asset_references(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("assetReferences: {inputs: {filenames: [1]}}")
    with pytest.raises(ValidationError, match="filenames must be a list of paths"):
        read_asset_references(tmp_path / "bad.yaml")


def test_cli_submits_input_directories_and_a_bundle(bucket: Bucket, tmp_path: Path) -> None:
    shot = tmp_path / "proj" / "shot"
    files = _shot(shot)
    extra = tmp_path / "proj" / "extra.txt"
    extra.write_bytes(b"extra")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    refs = {
        "assetReferences": {
            "inputs": {"directories": [str(shot)]},
            "outputs": {"directories": [str(tmp_path / "proj" / "renders")]},
            "referencedPaths": [str(tmp_path / "proj" / "library")],
        }
    }
    (bundle / "asset_references.yaml").write_text(json.dumps(refs))  # JSON is YAML too
    common = [
        str(Path(sys.executable).parent / "jobattach"),
        "attachments",
        "upload",
        *("--bucket", bucket.name, "--root-prefix", "JA"),
        *("--farm-id", "farm-1", "--queue-id", "queue-1", "--json"),
    ]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*common, *args], capture_output=True, text=True, check=False, env=dict(os.environ)
        )

    by_dir = run("--input-dir", str(shot), "--input", str(extra))
    assert by_dir.returncode == 0, by_dir.stderr
    (entry,) = json.loads(by_dir.stdout)["manifests"]
    official = official_upload(
        bucket.name, "Official", [*files, str(extra)], tmp_path, "farm-1", "queue-1"
    )
    assert entry["inputManifestHash"] == official.manifests[0].inputManifestHash

    by_bundle = run("--asset-references", str(bundle), "--input", str(extra))
    assert by_bundle.returncode == 0, by_bundle.stderr
    (entry,) = json.loads(by_bundle.stdout)["manifests"]
    assert entry["inputManifestHash"] == official.manifests[0].inputManifestHash
    assert entry["outputRelativeDirectories"] == ["renders"]

    nothing = run()
    assert nothing.returncode == 1
    assert "nothing to submit" in nothing.stderr
