#!/usr/bin/env bash
# The Node host (host/node): `build` (the default) installs its npm packages when they are
# missing or older than package-lock.json, then transpiles the component and compiles the
# TypeScript into dist/; `test` runs its `node --test` suite; `lint` type-checks it and checks
# its formatting (prettier; `fmt` formats it).
# Needs the component built (./just build), and node >= 20 with npm on PATH.
set -euo pipefail
cd "$(dirname "$0")/../host/node"

die() {
  echo "node-host: $1" >&2
  exit 1
}
missing() { die "$1: install Node.js 20 or newer with npm (on Debian: apt-get install nodejs npm)"; }
command -v node >/dev/null || missing "node is not on PATH"
command -v npm >/dev/null || missing "npm is not on PATH"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || missing "node $(node --version) is too old"

# npm ci writes node_modules/.package-lock.json last: older than the lock means stale.
packages() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
}

case "${1:-build}" in
  build)
    packages
    node scripts/build.mjs
    ;;
  test)
    [ -f dist/index.js ] || die "host/node/dist is not built (scripts/node-host.sh build)"
    node --test test/*.test.mjs
    ;;
  lint)
    packages
    [ -d generated ] || die "host/node/generated is not built (scripts/node-host.sh build)"
    npx --no-install tsc -p . --noEmit
    npx --no-install prettier --check --log-level warn .
    node --check bin/jobattach-engine.mjs
    ;;
  fmt)
    packages
    npx --no-install prettier --write --log-level warn .
    ;;
  *)
    echo "usage: scripts/node-host.sh [build|test|lint|fmt]" >&2
    exit 2
    ;;
esac
