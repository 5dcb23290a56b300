#!/usr/bin/env bash
# The queue comparison, in one run on one Redis: payworker's queue and a Node BullMQ
# worker each drain 20,000 pre-enqueued no-op jobs, and run producer and worker together
# (e2e), at concurrency 1, 16 and 64. Prints a table and payworker's ratio to BullMQ.
#
#   crates/bench/compare.sh [--jobs N] [--redis URL]
#
# Builds payworker-bench in release and installs BullMQ (npm ci) when needed.
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=20000
redis=redis://127.0.0.1:6379
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) jobs="$2"; shift 2 ;;
    --redis) redis="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/ensure-redis.sh
cargo build --release --quiet -p payworker-bench
[[ -d crates/bench/bullmq/node_modules ]] || (cd crates/bench/bullmq && npm ci --silent)

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for mode in drain e2e; do
  ./target/release/payworker-bench queue --mode "$mode" --jobs "$jobs" --concurrency 1,16,64 --redis "$redis" \
    | tail -n +2 | while IFS=, read -r _ c n _ rate cpu; do echo "payworker $mode $c $rate $cpu"; done >> "$results"
  for c in 1 16 64; do
    node crates/bench/bullmq/noop.mjs --mode "$mode" --jobs "$jobs" --concurrency "$c" --redis "$redis" \
      | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print("bullmq", r["mode"], r["concurrency"], r["jobs_per_sec"], round(r["redis_cpu_us_per_job"]))' >> "$results"
  done
done

python3 - "$results" "$jobs" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
data = {(s, m, int(c)): (float(r), float(cpu)) for s, m, c, r, cpu in rows}
print(f"{sys.argv[2]} no-op jobs per run; jobs/s (Redis CPU µs per job)")
print(f"{'mode':<6} {'conc':>4} {'payworker':>18} {'bullmq':>16} {'ratio':>6}")
for m in ("drain", "e2e"):
    for c in (1, 16, 64):
        p, b = data[("payworker", m, c)], data[("bullmq", m, c)]
        print(f"{m:<6} {c:>4} {p[0]:>10.0f} ({p[1]:>3.0f}µs) {b[0]:>8.0f} ({b[1]:>3.0f}µs) {p[0]/b[0]:>5.1f}x")
PY
