"""The component reads nothing outside the roots it is granted, and fails cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
import xxhash

import jobattach
from jobattach import FileAccessError, ValidationError
from jobattach_host import Grant, Instance


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A granted root beside an outside directory holding a secret."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "ok.txt").write_text("fine")
    (root / "sub" / "inner.txt").write_text("inner")
    return root, outside


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "/etc/passwd",
        "a//b",
        "./ok.txt",
        "",
        "ok.txt\0",
    ],
)
def test_paths_that_could_leave_the_root_are_refused(layout: tuple[Path, Path], path: str) -> None:
    root, _ = layout
    with pytest.raises(ValidationError) as err:
        jobattach.hash_files(root, [path])
    assert err.value.kind == "invalid-input"
    assert err.value.path == path


def test_a_backslash_or_a_colon_is_a_character_of_a_name(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    for name in ["back\\slash.txt", "C:"]:
        (root / name).write_text(name)
    hashed = jobattach.hash_files(root, ["back\\slash.txt", "C:"])
    assert hashed == [xxhash.xxh3_128_hexdigest(n) for n in ["back\\slash.txt", "C:"]]
    with pytest.raises(FileAccessError) as err:  # not the file sub/inner.txt
        jobattach.hash_files(root, ["sub\\inner.txt"])
    assert err.value.kind == "not-found"


def test_symlink_to_a_file_outside_is_refused(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    (root / "escape").symlink_to(outside / "secret.txt")
    with pytest.raises(FileAccessError) as err:
        jobattach.hash_files(root, ["escape"])
    assert err.value.kind == "permission-denied"


def test_symlinked_directory_leading_outside_is_refused(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    (root / "up").symlink_to("..")
    (root / "out").symlink_to(outside)
    for path in ["up/outside/secret.txt", "out/secret.txt"]:
        with pytest.raises(FileAccessError, match="not permitted"):
            jobattach.hash_files(root, [path])


def test_symlink_that_stays_inside_is_followed(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    (root / "link").symlink_to("sub/inner.txt")
    assert jobattach.hash_files(root, ["link"]) == jobattach.hash_files(root, ["sub/inner.txt"])


def test_missing_file_and_directory_have_their_own_errors(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    with pytest.raises(FileAccessError) as missing:
        jobattach.hash_files(root, ["ok.txt", "nope.txt"])
    assert (missing.value.kind, missing.value.path) == ("not-found", "nope.txt")
    with pytest.raises(FileAccessError) as directory:
        jobattach.hash_files(root, ["sub"])
    assert directory.value.kind == "wrong-type"


def test_hash_file_reports_the_full_host_path(tmp_path: Path) -> None:
    with pytest.raises(FileAccessError) as err:
        jobattach.hash_file(tmp_path / "missing.bin")
    assert err.value.path == str(tmp_path / "missing.bin")
    assert str(tmp_path / "missing.bin") in str(err.value)


def test_a_root_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileAccessError, match="does not exist"):
        jobattach.hash_files(tmp_path / "absent", ["x"])


def test_a_session_without_roots_still_has_wasi(tmp_path: Path) -> None:
    # A Store without WASI would abort the process on the first WASI call; ours always has it.
    with pytest.raises(FileAccessError, match="not granted"):
        Instance().call("hashing", "hash-file", "/r0", "x")


def test_only_the_named_root_is_visible(layout: tuple[Path, Path]) -> None:
    root, outside = layout
    instance = Instance([Grant(root.resolve())])
    assert instance.roots == ["/r0"]
    with pytest.raises(FileAccessError, match="not granted"):
        instance.call("hashing", "hash-file", str(outside), "secret.txt")
    with pytest.raises(FileAccessError, match="not granted"):
        instance.call("hashing", "hash-file", "/", "etc/passwd")


def test_malformed_batch_argument_is_a_validation_error(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    instance = Instance([Grant(root.resolve())])
    with pytest.raises(ValidationError, match="JSON array"):
        instance.call("hashing", "hash-files", "/r0", '{"not": "a list"}')
