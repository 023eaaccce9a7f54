#!/usr/bin/env bash
# The built wheel installed as a user would (not editable) on the oldest and the newest
# supported CPython, each in a throwaway venv, and the core tests run against it there.
# The interpreters are pyenv's (`pyenv root`), the newest patch release of each minor version.
# Usage: scripts/other-pythons.sh [MINOR...]   (default: 3.9 3.13)
set -euo pipefail
cd "$(dirname "$0")/.."

minors=("$@")
[ ${#minors[@]} -gt 0 ] || minors=(3.9 3.13)
# The tests that exercise what users call: the public API and CLI, the component loaded from
# the wheel, submissions and downloads against the local S3 server, with the official package.
core=(tests/test_public_api.py tests/test_cli.py tests/test_manifest.py tests/test_hashing.py
  tests/test_submit.py tests/test_sync_inputs.py tests/test_download_choices.py
  tests/test_mirror.py)
# What the core tests import besides the wheel's own dependencies.
test_deps=("pytest>=8" "pytest-timeout>=2" "moto[server]>=5" "deadline-job-attachments==0.1.5"
  "xxhash>=3" "hypothesis>=6" "boto3-stubs[s3]>=1.34" "eval_type_backport>=0.2")

interpreter() {
  local root found
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  found=$(ls -d "$root/versions/$1".* 2>/dev/null | grep -E "/$1\.[0-9]+$" | sort -V | tail -1)
  [ -n "$found" ] && [ -x "$found/bin/python" ] ||
    { echo "other-pythons: no CPython $1 under $root/versions (pyenv install $1)" >&2; exit 1; }
  echo "$found/bin/python"
}

work=.build/other-pythons
rm -rf "$work" && mkdir -p "$work"
.venv/bin/python -m hatchling build -t wheel -d "$work" >/dev/null
wheel=$(ls "$work"/*.whl)
for minor in "${minors[@]}"; do
  python=$(interpreter "$minor")
  env="$work/py$minor"
  "$python" -m venv "$env"
  "$env/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" "${test_deps[@]}"
  echo "other-pythons: $("$env/bin/python" -V) with $(basename "$wheel")"
  # moto 5.1, the last for Python 3.9, stores a one-part multipart upload's composite CRC32 as
  # the object's full checksum, which botocore then finds wrong on every GET (S3 marks it
  # COMPOSITE, which botocore skips): its responses' checksums are checked only where required.
  # python/ and host/ are not on the path: the installed wheel is what the tests import.
  AWS_RESPONSE_CHECKSUM_VALIDATION=when_required \
    JOBATTACH_EXPECT_INSTALLED="$env" "$env/bin/python" -m pytest -q -p no:cacheprovider \
    --rootdir "$PWD" -c "$PWD/pyproject.toml" "${core[@]/#/$PWD/}"
done
