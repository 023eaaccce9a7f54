"""Every JSON shape of the contract has a schema in wit/schemas/, and what the component emits
and what this host sends match them."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import xxhash

from conftest import ROOT
from jobattach_host import engine, host_files
from jobattach_host.sandbox import instance_for
from jobattach_host.snapshot import plan_options

SCHEMAS = ROOT / "wit" / "schemas"
NAMES = sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))
#: A file name whose byte 0xff is not UTF-8: the escape rule's case.
RAW = b"raw-\xff.bin"


def check(name: str, value: Any) -> None:
    """``value`` (JSON text, or what it decodes to) is valid by ``name``'s schema."""
    doc = json.loads(value) if isinstance(value, str) else value
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"abc")
    (root / "sub" / "b.txt").write_bytes(b"hello")
    (root / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("a.txt")
    (root / "empty").mkdir()
    with open(os.path.join(os.fsencode(root), RAW), "wb") as f:
        f.write(b"raw")
    return root


def test_every_schema_is_a_valid_schema_and_named_in_the_wit() -> None:
    wit = "".join(p.read_text() for p in sorted((ROOT / "wit").glob("*.wit")))
    assert len(NAMES) >= 10
    for name in NAMES:
        jsonschema.Draft202012Validator.check_schema(
            json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        )
        assert f"schemas/{name}.schema.json" in wit, f"{name} is not named in the WIT"
    named = set(re.findall(r"schemas/([a-z-]+)\.schema\.json", wit))
    assert named <= set(NAMES), f"named in the WIT but missing: {named - set(NAMES)}"


def test_a_schema_refuses_a_nanosecond_time_as_a_json_number() -> None:
    with pytest.raises(jsonschema.ValidationError):
        check("listing", [["a", "f", 1, 1700000010000042000, "1", False]])
    check("listing", [["a", "f", 1, "1700000010000042000", "1", False]])


def test_listings_the_host_sends_match(tree: Path) -> None:
    listing = host_files.list_tree(tree)
    check("listing", listing)
    assert "raw-\\udcff.bin" in listing  # the escape, not a replacement character
    check("listing", host_files.list_paths(tree, ["a.txt", "link"]))


def test_snapshot_plans_and_diffs_match(tree: Path) -> None:
    s = instance_for(tree)
    for format in ("v2023-03-03", "v2025-12-snapshot"):
        plan = engine.plan_snapshot(s, plan_options(tree, s, (), (), format))
        check("snapshot-plan", plan)
        assert "raw-\udcff.bin" in [f[0] for f in plan["files"]]
    listed = host_files.list_paths(tree, ["a.txt"])
    check("snapshot-plan", engine.plan_snapshot(s, plan_options(tree, s, (), (), None), listed))
    empty = engine.build_manifest("v2023-03-03", '{"files": []}').encoded
    diff = engine.diff_tree(s, empty, plan_options(tree, s, (), (), None), True)
    check("manifest-diff", diff)
    assert diff["added"]


def test_hashing_items_and_digests_match(tree: Path) -> None:
    items: list[engine.Item] = [
        "a.txt",
        ("sub/b.txt", 5),
        ("sub/b.txt", 5, 2),
        (os.fsdecode(RAW), 3),
    ]
    check("hash-items", engine.bulk(items))
    digests = engine.hash_items(instance_for(tree), items)
    check("digests", digests)
    assert isinstance(digests[2], list)
    assert len(digests[2]) == 3  # pieces of 2, 2 and 1 bytes


def test_manifest_entries_and_diffs_match() -> None:
    view = {
        "parent": None,
        "dirs": [["d", False]],
        "files": [
            {"path": "d/x", "hash": "0" * 31 + "1", "size": 1, "mtime": 5, "runnable": True},
            {"path": "l", "symlink": "d/x"},
        ],
    }
    check("manifest-entries", view)
    built = engine.build_manifest("v2025-12-snapshot", engine.bulk(view))
    check("manifest-entries", built.entries)
    old = engine.build_manifest("v2023-03-03", '{"files": []}')
    entry = {"path": "x", "hash": "0" * 32, "size": 1, "mtime": 2}
    new = engine.build_manifest("v2023-03-03", engine.bulk({"files": [entry]}))
    check("manifest-diff", engine.diff_manifests(old.encoded, new.encoded))


def test_groups_and_attachments_match() -> None:
    request = engine.GroupRequest(
        style="posix",
        inputs=[
            ("/show/a/x.exr", "file"),
            ("/show/a/bad-\udcff", "file"),
            ("/show/gone", "missing"),
        ],
        outputs=["/show/a/out"],
        references=[],
        locations=[("Proj", "/proj", "LOCAL")],
        require_paths_exist=False,
    )
    check("group-paths", engine.group_paths(request))
    groups = engine.group(request)
    check("groups", groups)
    assert "a/bad-\udcff" in groups["groups"][0]["inputs"]
    submission = engine.Submission(
        "JA",
        "farm-1",
        "queue-1",
        "COPIED",
        "posix",
        [engine.SubmittedRoot("/show/a", None, ["out"], "0" * 32, "00ff")],
    )
    check("attachments", engine.describe(submission).attachments)


def test_mirror_listings_and_plans_match() -> None:
    source = [("a", 1, 10), ("bad-\udcff", 1, 10), ("../up", 1, 1)]
    check("mirror-listing", engine.mirror_listing(source))
    plan = engine.plan_mirror(
        engine.MirrorRequest(source, [("a", 1, 10), ("old", 1, 1)], delete=True)
    )
    check("mirror-plan", plan.__dict__)
    assert plan.unsupported == ["../up", "bad-\udcff"]


def test_refused_entries_match() -> None:
    rows = [("CON", None), ("ok", 5), ("bad-\udcff", 1)]
    check("entry-rows", engine.entry_rows(rows))
    found = engine.refused_entries(engine.Destination("windows"), engine.entry_rows(rows))
    check("refused", [list(r) for r in found])
    assert [p for p, _ in found] == ["CON", "bad-\udcff"]


def test_names_that_are_not_utf8_cross_by_the_one_escape(tree: Path) -> None:
    # The rule, whatever the locale: byte B not part of valid UTF-8 is U+DC00+B.
    assert (
        host_files.name_text(b"a-\xff-\xc3\xa9-\xed\xa0\x80")
        == "a-\udcff-\u00e9-\udced\udca0\udc80"
    )
    assert host_files.name_bytes("a-\udcff-\u00e9") == b"a-\xff-\xc3\xa9"
    assert '"raw-\\udcff.bin","f",3' in host_files.list_tree(tree)
    # The component reads it through read-raw, by its escaped name: the digest of its bytes.
    digest = engine.hash_items(instance_for(tree), [os.fsdecode(RAW)])
    assert digest == [xxhash.xxh3_128_hexdigest(b"raw")]


def test_mount_listings_and_layers_match() -> None:
    from jobattach import Manifest, ManifestEntry
    from jobattach_host.mount_tree import MountTree

    entries = [
        ManifestEntry("a/b.txt", "0" * 32, 3, 5),
        ManifestEntry("raw-\udcff", "1" * 32, 1, 6),
    ]
    tree = MountTree(Manifest.from_entries(entries).encode().decode(), 7)
    tree.create("new", directory=False, now_us=8)
    tree.copy_up("a/b.txt")
    for path in ("", "a"):
        check("mount-listing", tree._method("entries", path))
    check("mount-layer", tree._call(tree._funcs["layer"], tree._tree))
