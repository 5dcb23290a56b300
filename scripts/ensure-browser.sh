#!/usr/bin/env bash
# Makes sure the console's browser test (tests/it/console/browser.rs) can run: Debian's
# `chromium` (headless, no download from a CDN at test time) and `playwright-core`, exactly
# the version of the committed tests/browser/package-lock.json. Idempotent: each step is
# skipped when what it provides is already there.
#
# Fresh Debian 12 machine, as root: apt-get (`apt-get update` only when something must be
# installed) and npm ci (the npm registry).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "ensure-browser: $*" >&2; }

if ! command -v chromium >/dev/null 2>&1; then
  say "apt-get install chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "no node/npm on PATH; install Node.js 20 or later first"
  exit 1
fi
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
  say "npm ci in tests/browser"
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
