#!/usr/bin/env bash
# Enqueue one payworker job with ONE command: XADD <stream> * job <json>.
#
# Usage: produce.sh [JOB_FILE|-] [STREAM]
#
# JOB_FILE is a job's JSON (a CreatePayment or ProcessNotification job, see
# jobs/*.schema.json), sent as it is; "-" reads it from stdin; without it a sample
# hosted-checkout CreatePayment job is built. STREAM defaults to $PAYWORKER_STREAM, then to
# payworker:{create_payment:0}. Redis is $REDIS_URL (default redis://127.0.0.1:6379).
# Prints the new entry's id.
#
# Needs redis-cli (Debian: `apt-get install redis-tools`).
set -euo pipefail

stream="${2:-${PAYWORKER_STREAM:-payworker:{create_payment:0\}}}"
url="${REDIS_URL:-redis://127.0.0.1:6379}"
max_bytes=65536

if [[ $# -ge 1 ]]; then
  # The file's text as it is: JSON may be pretty-printed; the worker parses it.
  if [[ "$1" == "-" ]]; then job="$(cat)"; else job="$(<"$1")"; fi
else
  # Money is a decimal STRING: "20.99", never 20.99.
  order_no="sh-$(date +%s)-$RANDOM$RANDOM"
  # The caller's trace (W3C Trace Context), from TRACEPARENT as OpenTelemetry passes it to a
  # process: the worker's spans become its children and the result events carry it. It is
  # 55 characters of [0-9a-f-] (the schema checks), so it needs no JSON escaping.
  trace=""
  if [[ -n "${TRACEPARENT:-}" ]]; then trace=$(printf ',"trace":{"traceparent":"%s"}' "$TRACEPARENT"); fi
  job=$(printf '{"version":1,"method":"host","order_no":"%s","amount":"20.99","currency":"EUR","return_url":"https://shop.example.com/orders/%s/done","metadata":{"source":"produce.sh"}%s}' \
    "$order_no" "$order_no" "$trace")
fi

if (($(printf '%s' "$job" | wc -c) > max_bytes)); then
  echo "produce.sh: job is larger than $max_bytes bytes" >&2
  exit 1
fi

# The whole contract: one XADD, auto id ('*', quoted so the shell leaves it alone), exactly
# one field named "job". The JSON is one argument, so no quoting of its content is needed.
# redis-cli prints an error reply on stdout and still exits 0 on some versions: check it.
reply=$(redis-cli -u "$url" --no-auth-warning XADD "$stream" '*' job "$job")
if [[ ! "$reply" =~ ^[0-9]+-[0-9]+$ ]]; then
  echo "produce.sh: XADD failed: $reply" >&2
  exit 1
fi
echo "$reply"
