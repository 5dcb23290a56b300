#!/usr/bin/env bash
# The README's run command: makes sure Redis is there (installing it on a fresh machine),
# then runs the all-in-one demo on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-redis.sh
exec cargo run --release --quiet -- demo "$@"
