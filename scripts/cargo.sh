#!/usr/bin/env bash
# Runs Debian's cargo with Debian's rustc, clippy and rustdoc (installed by toolchain.sh):
# rustup's proxies come first on PATH here, and its toolchain has no wasm target.
set -euo pipefail
export PATH="/usr/bin:$PATH"
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
exec /usr/bin/cargo "$@"
