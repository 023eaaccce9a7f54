"""The download plan, output patterns and internal names are the component's: contract cases
(tests/conformance/download/cases.json) go in as the facts a host finds, the plan comes out,
checked against the schemas in wit/schemas/; and the worker does what the plan says."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
from wasmtime import component as wc

from conftest import ROOT
from jobattach.manifest import Manifest
from jobattach.worker import CONFLICT_POLICIES, _found
from jobattach_host import ValidationError
from jobattach_host.choices import ConflictPolicy, check_choice
from jobattach_host.destination import open_root
from jobattach_host.engine import (
    DownloadDestination,
    DownloadPlan,
    HashFirst,
    download_plan,
    internal_kinds,
    internal_name,
    output_patterns,
)
from jobattach_host.sandbox import instance_for

CASES = json.loads((ROOT / "tests" / "conformance" / "download" / "cases.json").read_text())
SCHEMAS = ROOT / "wit" / "schemas"


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _destinations(case: dict[str, Any]) -> list[DownloadDestination]:
    return [
        DownloadDestination(d["manifest"], [tuple(f) for f in d["found"]], d["shown"], d["digests"])
        for d in case["destinations"]
    ]


def _raw(d: DownloadDestination) -> wc.Record:
    r = wc.Record()
    shown = json.dumps(d.shown)
    fields = {"manifest": d.manifest, "shown": shown, "found": json.dumps(list(d.found))}
    digests = None if d.digests is None else json.dumps(list(d.digests))
    for name, value in {**fields, "digests": digests}.items():
        setattr(r, name, value)
    return r


def _planned(dests: list[DownloadDestination], policy: str) -> DownloadPlan:
    plan = download_plan(dests, cast(ConflictPolicy, policy))
    assert isinstance(plan, DownloadPlan)
    return plan


@pytest.mark.parametrize("case", CASES["plans"], ids=lambda c: c["name"])
def test_the_component_plans_a_download_from_what_the_host_found(case: dict[str, Any]) -> None:
    dests = _destinations(case)
    blank = [DownloadDestination(d.manifest, d.found, d.shown) for d in dests]
    first = download_plan(blank, cast(ConflictPolicy, case["policy"]))
    want_hash = [[tuple(r) for r in rows] for rows in case["hash"]]
    if any(want_hash):  # digests decide somewhere: asked for first
        assert isinstance(first, HashFirst)
        assert first.files == want_hash
        raw = instance_for().call("download", "plan", [_raw(d) for d in blank], case["policy"])
        assert isinstance(raw, list)  # the outcome hash, untagged by wasmtime-py
        for rows in raw:
            jsonschema.validate(json.loads(rows), _schema("download-hash"))
    elif "error" not in case:  # nothing to hash: planned at once
        assert first == _planned(dests, case["policy"])
    if "error" in case:
        with pytest.raises(ValidationError) as caught:
            download_plan(dests, cast(ConflictPolicy, case["policy"]))
        assert str(caught.value).startswith(case["error"])
        return
    plan = _planned(dests, case["policy"])
    want = case["expect"]
    got = {k: getattr(plan, k) for k in want if k != "plan"}
    assert got == {k: v for k, v in want.items() if k != "plan"}
    assert plan.conflicts == want["plan"]["conflicts"]
    emitted = instance_for().call("download", "plan", [_raw(d) for d in dests], case["policy"])
    assert isinstance(emitted, wc.Record)  # the outcome planned, untagged by wasmtime-py
    bulk = json.loads(getattr(emitted, "plan"))  # noqa: B009 (wasmtime-py records are untyped)
    jsonschema.validate(bulk, _schema("download-plan"))
    assert bulk == want["plan"]
    for part, expected in zip(plan.destinations, want["plan"]["destinations"]):
        assert [list(p) for p in part.places] == expected["places"]
        assert [list(c) for c in part.contents] == expected["contents"]


def test_the_plan_is_refused_when_digests_do_not_match_what_it_hashes() -> None:
    (case,) = [c for c in CASES["plans"] if c["policy"] == "skip" and c["hash"][0]]
    (dest,) = _destinations(case)
    assert dest.digests is not None
    short = DownloadDestination(dest.manifest, dest.found, dest.shown, dest.digests[:1])
    with pytest.raises(ValidationError, match="1 digests for the 2 files"):
        download_plan([short], "skip")


def test_conflict_policies_are_the_wit_enum_and_others_are_refused() -> None:
    wit = (ROOT / "wit" / "download.wit").read_text()
    body = re.search(r"enum conflict-policy \{(.*?)\}", wit, re.S)
    assert body is not None
    names = re.findall(r"^\s*([a-z-]+),", body.group(1), re.M)
    assert tuple(names) == CONFLICT_POLICIES
    with pytest.raises(
        ValidationError,
        match="on_conflict must be one of 'overwrite', 'skip', 'error', 'create-copy'",
    ):
        check_choice("on_conflict", "replace", ConflictPolicy)


@pytest.mark.parametrize("case", CASES["output_patterns"], ids=lambda c: repr(c["directories"]))
def test_output_patterns_are_the_components(case: dict[str, Any]) -> None:
    windows = case["format"] == "windows"
    assert output_patterns(case["directories"], windows=windows) == case["expect"]


def test_output_directories_not_named_in_utf8_give_patterns() -> None:
    # the snapshot reads a lone surrogate in a pattern as U+FFFD
    assert output_patterns(["out-\udcff"], windows=False) == ["out-\ufffd/**"]


def test_internal_names_are_named_and_recognised_by_the_component() -> None:
    cases = CASES["internal_names"]
    assert internal_kinds([c["name"] for c in cases]) == [c["kind"] for c in cases]
    # a name byte that is not UTF-8 (a lone surrogate here) is no internal name
    assert internal_kinds(["a\udcff", ".jobattach-0123456789abcdef"]) == [None, "temporary"]
    staging, temporary = internal_name("staging"), internal_name("temporary")
    assert internal_kinds([staging, temporary]) == ["staging", "temporary"]
    assert staging != internal_name("staging")  # random each time
    with pytest.raises(ValidationError, match="8 random bytes"):
        instance_for().call("download", "internal-name", "staging", b"short")


def test_the_worker_gives_the_component_what_stands_without_following_links(
    tmp_path: Path,
) -> None:
    """What the worker found (a stale file, a symlink to it, nothing) goes in as facts; the
    plan downloads the missing file and overwrites both others."""
    dest = tmp_path / "dest"
    (dest / "x").mkdir(parents=True)
    (dest / "x" / "1").write_bytes(b"stale")
    os.symlink("1", dest / "x" / "2")
    (case,) = [c for c in CASES["plans"] if c["name"].startswith("each content once")]
    text = case["destinations"][0]["manifest"]
    with open_root(dest) as root:
        found = _found(root, Manifest.decode(text))
    assert [(p, kind, size) for p, kind, size, _ in found] == [("x/1", "f", 5), ("x/2", "o", 1)]
    shown = os.path.join(str(dest), "")
    # nothing of the manifest's size and mtime stands there: planned in one call
    plan = _planned([DownloadDestination(text, found, shown)], "overwrite")
    assert plan.conflicts == {"overwritten": [f"{shown}x/1", f"{shown}x/2"]}
    assert [p.path for p in plan.destinations[0].places] == ["x/1", "x/2", "y"]
