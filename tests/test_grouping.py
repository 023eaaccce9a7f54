"""Grouping a job's paths into asset roots matches the official submitter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import pytest
from deadline.job_attachments.exceptions import MisconfiguredInputsError
from deadline.job_attachments.upload import S3AssetManager

from jobattach import ValidationError
from jobattach_host.submit import group_paths

Groups = set[tuple[str, Optional[str], frozenset[str], frozenset[str], frozenset[str]]]


def official(
    inputs: list[str],
    outputs: list[str],
    refs: list[str],
    locations: list[tuple[str, str, str]],
    require: bool = False,
) -> Groups:
    local = {path: name for name, path, kind in locations if kind == "LOCAL"}
    shared = {path: name for name, path, kind in locations if kind == "SHARED"}
    groups = S3AssetManager()._get_asset_groups(
        set(inputs), set(outputs), set(refs), local, shared, require
    )
    return {
        (
            g.root_path,
            g.file_system_location_name,
            frozenset(map(str, g.inputs)),
            frozenset(map(str, g.outputs)),
            frozenset(map(str, g.references)),
        )
        for g in groups
    }


def ours(
    inputs: list[str],
    outputs: list[str],
    refs: list[str],
    locations: list[tuple[str, str, str]],
    require: bool = False,
) -> Groups:
    g = group_paths(inputs, outputs, refs, locations=locations, require_paths_exist=require)

    def full(root: str, rels: list[str]) -> frozenset[str]:
        return frozenset(os.path.join(root, r) if r else root for r in rels)

    return {
        (
            x.root,
            x.location,
            full(x.root, x.inputs),
            full(x.root, x.outputs),
            full(x.root, x.references),
        )
        for x in g.groups
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for rel in [
        "show/a/x.exr",
        "show/a/b/y.exr",
        "show/c/z.exr",
        "proj/tex/t.tx",
        "proj/tex/u/v.tx",
        "lib/shared.abc",
        "solo/only.blend",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    return tmp_path


def _scenarios(t: Path) -> list[tuple[list[str], list[str], list[str], list[tuple[str, str, str]]]]:
    def p(rel: str) -> str:
        return str(t / rel)

    return [
        ([p("show/a/x.exr")], [], [], []),
        ([p("show/a/x.exr"), p("show/a/b/y.exr"), p("show/c/z.exr")], [p("show/a/out")], [], []),
        (
            [p("show/a/x.exr"), p("proj/tex/t.tx"), p("proj/tex/u/v.tx"), p("lib/shared.abc")],
            [p("proj/renders")],
            [p("proj/ref.txt")],
            [
                ("Proj", p("proj"), "LOCAL"),
                ("Tex", p("proj/tex"), "LOCAL"),
                ("Lib", p("lib"), "SHARED"),
            ],
        ),
        ([p("show/a/x.exr"), p("show/missing.exr")], [], [], []),
        ([p("solo/only.blend")], [p("renders/out")], [], [("Proj", p("proj"), "LOCAL")]),
    ]


@pytest.mark.parametrize("index", range(5))
def test_groups_match_the_official_submitter(tree: Path, index: int) -> None:
    inputs, outputs, refs, locations = _scenarios(tree)[index]
    assert ours(inputs, outputs, refs, locations) == official(inputs, outputs, refs, locations)


def test_missing_inputs_are_refused_when_required_naming_each(tree: Path) -> None:
    inputs = [str(tree / "show/a/x.exr"), str(tree / "nope1.exr"), str(tree / "nope2.exr")]
    with pytest.raises(MisconfiguredInputsError):
        official(inputs, [], [], [], require=True)
    with pytest.raises(ValidationError) as err:
        group_paths(inputs, require_paths_exist=True)
    assert str(tree / "nope1.exr") in str(err.value)
    assert str(tree / "nope2.exr") in str(err.value)
    relaxed = group_paths(inputs)
    assert relaxed.missing == [str(tree / "nope1.exr"), str(tree / "nope2.exr")]


def test_a_directory_given_as_an_input_file_is_refused(tree: Path) -> None:
    with pytest.raises(ValidationError, match="directories given as input files"):
        group_paths([str(tree / "show")])


def test_shared_paths_are_counted(tree: Path) -> None:
    g = group_paths(
        [str(tree / "lib/shared.abc"), str(tree / "show/a/x.exr")],
        locations=[("Lib", str(tree / "lib"), "SHARED")],
    )
    assert g.skipped_shared == 1
    assert [x.inputs for x in g.groups] == [["x.exr"]]
