#!/usr/bin/env bash
# The one test command (README "Test"; .ci/run calls exactly this). On a fresh machine it
# provides what the tests need, then runs every check: format, lints, all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-redis.sh
scripts/ensure-producers.sh
scripts/ensure-deploy-tools.sh
scripts/ensure-browser.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== cargo deny (deny.toml)"
scripts/cargo-deny.sh

echo "== tests"
cargo test --locked --workspace --doc
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --profile ci --lib --bins --tests
else
  cargo test --locked --workspace --lib --bins --tests
fi
