"""Where a job's roots land on a worker, against the official worker's rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from deadline.job_attachments._path_mapping import _PathMappingRuleApplier
from deadline.job_attachments._utils import _get_unique_dest_dir_name
from deadline.job_attachments.models import PathMappingRule as OfficialRule

from jobattach import ValidationError
from jobattach_host.choices import PathFormat
from jobattach_host.sync import PathMappingRule, map_path, session_root_name


@pytest.mark.parametrize(
    "root", ["/tmp/ja-vectors/unicode", "C:\\Show\\shot010", "/show/caf\u00e9/\U0001f600", ""]
)
def test_session_roots_are_named_as_the_official_worker_names_them(root: str) -> None:
    assert session_root_name(root) == _get_unique_dest_dir_name(root)


RULES: list[list[tuple[PathFormat, str, str]]] = [
    [("posix", "/mnt/projects", "/data/projects"), ("posix", "/mnt/projects/special", "/fast")],
    [("windows", "C:\\Show", "/mnt/show"), ("windows", "c:\\show\\Lib", "/lib")],
    [("posix", "/", "/everything")],
]
PATHS = [
    "/mnt/projects/a/b.exr",
    "/mnt/projects/special/x",
    "/mnt/projectsX/a",
    "/elsewhere",
    "C:\\Show\\a\\b.exr",
    "c:/SHOW/lib/t.tx",
    "C:\\Other",
    "/mnt/projects",
]


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize("path", PATHS)
def test_path_mapping_matches_the_official_applier(
    rules: list[tuple[PathFormat, str, str]], path: str
) -> None:
    official = _PathMappingRuleApplier([OfficialRule(*r) for r in rules]).transform(path)
    ours = map_path([PathMappingRule(*r) for r in rules], path)
    expected = None if isinstance(official, str) else str(official)
    assert ours == expected


def test_rules_of_two_formats_are_refused() -> None:
    rules = [PathMappingRule("posix", "/a", "/b"), PathMappingRule("windows", "C:\\a", "/c")]
    with pytest.raises(ValidationError, match="only one is permitted"):
        map_path(rules, "/a/x")


def test_no_rules_map_nothing(tmp_path: Path) -> None:
    assert map_path([], str(tmp_path)) is None
