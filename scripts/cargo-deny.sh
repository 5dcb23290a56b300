#!/usr/bin/env bash
# The dependency policy (deny.toml): licences, bans (duplicate versions as warnings, no
# wildcard versions), sources, and security advisories. Installs cargo-deny (pinned) when
# missing. The advisory database is fetched from github.com; where it cannot be fetched
# (no route to GitHub), advisories are reported as not checked, loudly, and the rest still
# runs: the other checks need only the local registry cache.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $version"; then
  echo "cargo-deny: installing $version (once per machine)"
  cargo install --locked --quiet "cargo-deny@$version"
fi

# `cargo deny` reads `cargo metadata` for every platform, so crates no build here ever
# needed (Android's, Windows') must be in the local cache: on a fresh machine they are not.
cargo fetch --locked --quiet
cargo deny --offline check licenses bans sources
if timeout 120 cargo deny fetch db >/dev/null 2>&1; then
  cargo deny check advisories
else
  echo "cargo-deny: WARNING: the RustSec advisory database could not be fetched from github.com;" >&2
  echo "cargo-deny: WARNING: security advisories were NOT checked in this run" >&2
fi
