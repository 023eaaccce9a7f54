#!/usr/bin/env bash
# Builds component/ into one WebAssembly component and component/kernel/ into the hashing
# kernel (a core module with no imports), and places them where the host loads them
# (host/jobattach_host/jobattach.wasm and kernel.wasm). Uses Debian's rustc throughout: rustup's toolchain has
# no wasm target here and cannot use Debian's std sources.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/toolchain.sh

host_triple=$(/usr/bin/rustc -vV | sed -n 's/^host: //p')
llvm_major=$(/usr/bin/rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
sysroot=$(/usr/bin/rustc --print sysroot)

# wasm-component-ld: from Debian's rustc-web when it ships it, else from beside rustup's rustc;
# failing both, it is built from crates.io into .tools/ once.
component_ld() {
  local root ld
  for root in "$sysroot" "$(rustc --print sysroot 2>/dev/null || true)"; do
    ld="$root/lib/rustlib/$host_triple/bin/wasm-component-ld"
    [ -n "$root" ] && [ -x "$ld" ] && { echo "$ld"; return; }
  done
  [ -x .tools/bin/wasm-component-ld ] ||
    scripts/cargo.sh install --quiet --locked --root .tools wasm-component-ld@0.5.21 >&2
  echo "$PWD/.tools/bin/wasm-component-ld"
}

export RUSTC_BOOTSTRAP=1 # for -Z build-std on a stable compiler
# wasm-component-ld links with wasm-ld and then turns the module into a component; the component
# imports WASI 0.2 directly, so no preview-1 adapter is needed.
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$(component_ld)"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128 -C link-arg=--wasm-ld-path=/usr/bin/wasm-ld-$llvm_major -C link-arg=--wasi-adapter=none"

scripts/cargo.sh build --quiet --release --locked \
  --manifest-path component/Cargo.toml \
  --target wasm32-unknown-unknown -Z build-std=std,panic_abort

place() { cmp -s "$1" "$2" 2>/dev/null || cp "$1" "$2"; }
place component/target/wasm32-unknown-unknown/release/jobattach_engine.wasm host/jobattach_host/jobattach.wasm

# The kernel is linked by wasm-ld alone (a core module, not a component), in a target dir of
# its own so the two builds' standard libraries do not rebuild each other.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="/usr/bin/wasm-ld-$llvm_major" \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128 -C linker-flavor=wasm-ld" \
  scripts/cargo.sh build --quiet --release --locked \
  --manifest-path component/Cargo.toml --package jobattach-kernel --target-dir component/target/kernel \
  --target wasm32-unknown-unknown -Z build-std=std,panic_abort
place component/target/kernel/wasm32-unknown-unknown/release/jobattach_kernel.wasm host/jobattach_host/kernel.wasm
