#!/usr/bin/env bash
# Installs the toolchain that builds the component, from Debian's packages (DESIGN §3):
# rustc/cargo 1.96 with the standard library's sources (for -Z build-std, since no wasm target
# can be downloaded here), wasm-component-ld (shipped with rustc-web), wasm-ld from the lld that
# matches rustc's LLVM, and clippy. Idempotent: does nothing when all of it is installed.
set -euo pipefail

. "$(dirname "$0")/debian.sh"

install_missing rustc-web cargo-web rust-web-src rust-web-clippy
llvm_major=$(/usr/bin/rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
install_missing "lld-${llvm_major}"
