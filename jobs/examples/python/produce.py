#!/usr/bin/env python3
"""Enqueue one payworker job with ONE command: XADD <stream> * job <json>.

Usage:
    produce.py [JOB_FILE|-] [STREAM]

JOB_FILE is a job's JSON (a CreatePayment or ProcessNotification job, see
jobs/*.schema.json); "-" reads it from stdin; without it a sample hosted-checkout
CreatePayment job is built. STREAM defaults to $PAYWORKER_STREAM, then to
payworker:{create_payment:0}. Redis is $REDIS_URL (default redis://127.0.0.1:6379).
Prints the new entry's id.

Needs redis-py (`pip install redis`).
"""

import json
import os
import secrets
import sys
import time

import redis

DEFAULT_STREAM = "payworker:{create_payment:0}"
MAX_JOB_BYTES = 64 * 1024


def sample_job():
    """A minimal hosted-checkout payment. Money is a decimal STRING, never a float."""
    order_no = f"py-{int(time.time())}-{secrets.token_hex(4)}"
    return {
        "version": 1,
        "method": "host",
        "order_no": order_no,
        "amount": "20.99",
        "currency": "EUR",
        "return_url": f"https://shop.example.com/orders/{order_no}/done",
        "metadata": {"source": "produce.py"},
    }


def with_trace(job):
    """Joins the job to the caller's trace (W3C Trace Context), so the worker's spans are
    children of it and the result events carry it. An application with OpenTelemetry fills
    the carrier with its propagator: `carrier = {}; opentelemetry.propagate.inject(carrier);
    job["trace"] = carrier`. This script takes the context from `TRACEPARENT` (and
    `TRACESTATE`), the environment variables OpenTelemetry uses to pass it to a process."""
    traceparent = os.environ.get("TRACEPARENT")
    if traceparent:
        job["trace"] = {"traceparent": traceparent}
        if os.environ.get("TRACESTATE"):
            job["trace"]["tracestate"] = os.environ["TRACESTATE"]
    return job


def main(argv):
    path = argv[1] if len(argv) > 1 else None
    stream = argv[2] if len(argv) > 2 else os.environ.get("PAYWORKER_STREAM", DEFAULT_STREAM)
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")

    if path is None:
        job = with_trace(sample_job())
    elif path == "-":
        job = json.load(sys.stdin)
    else:
        with open(path, encoding="utf-8") as f:
            job = json.load(f)

    # Compact JSON, UTF-8 as is. (Amounts are strings, so no float is ever re-formatted.)
    payload = json.dumps(job, ensure_ascii=False, separators=(",", ":"))
    if len(payload.encode("utf-8")) > MAX_JOB_BYTES:
        sys.exit(f"produce.py: job is larger than {MAX_JOB_BYTES} bytes")

    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        # The whole contract: one XADD, auto id, exactly one field named "job".
        entry_id = client.xadd(stream, {"job": payload})
    finally:
        client.close()
    print(entry_id.decode() if isinstance(entry_id, bytes) else entry_id)


if __name__ == "__main__":
    main(sys.argv)
