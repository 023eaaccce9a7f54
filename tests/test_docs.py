"""The documentation builds strictly, its CLI page is the parser's, and it covers the API."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jobattach
from conftest import ROOT


def test_cli_page_is_generated_from_the_current_parser() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_docs.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_docs_build_strictly_with_every_export_in_the_api_reference(tmp_path: Path) -> None:
    site = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    documented = set(re.findall(r'id="jobattach\.(\w+)"', api))
    exported = {name for name in jobattach.__all__ if not name.startswith("_")}
    assert exported <= documented, sorted(exported - documented)


def test_readme_links_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?://|#)([^)#]+)", readme)
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing


def test_readme_names_every_environment_variable_the_code_reads() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    sources = [*ROOT.glob("python/**/*.py"), *ROOT.glob("host/**/*.py"), *ROOT.glob("bench/*.py")]
    sources.append(ROOT / "tests" / "conftest.py")
    read = set()
    for source in sources:
        text = source.read_text(encoding="utf-8")
        read |= set(re.findall(r"os\.environ(?:\.get\(|\[)\"((?:JOBATTACH|XDG)_\w+)\"", text))
    assert "JOBATTACH_CACHE_DIR" in read
    assert not [name for name in sorted(read) if f"`{name}`" not in readme]
