#!/usr/bin/env node
// Enqueue one payworker job with ONE command: XADD <stream> * job <json>.
//
// Usage: node produce.mjs [JOB_FILE|-] [STREAM]
//
// JOB_FILE is a job's JSON (a CreatePayment or ProcessNotification job, see
// jobs/*.schema.json); "-" reads it from stdin; without it a sample hosted-checkout
// CreatePayment job is built. STREAM defaults to $PAYWORKER_STREAM, then to
// payworker:{create_payment:0}. Redis is $REDIS_URL (default redis://127.0.0.1:6379).
// Prints the new entry's id.
//
// Needs node-redis: `npm ci` in this folder (package.json, package-lock.json).
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';

const DEFAULT_STREAM = 'payworker:{create_payment:0}';
const MAX_JOB_BYTES = 64 * 1024;

function sampleJob() {
  // Money is a decimal STRING, never a JS number.
  const orderNo = `node-${Math.floor(Date.now() / 1000)}-${randomBytes(4).toString('hex')}`;
  return {
    version: 1,
    method: 'host',
    order_no: orderNo,
    amount: '20.99',
    currency: 'EUR',
    return_url: `https://shop.example.com/orders/${orderNo}/done`,
    metadata: { source: 'produce.mjs' },
  };
}

// Joins the job to the caller's trace (W3C Trace Context), so the worker's spans are
// children of it and the result events carry it. An application with OpenTelemetry fills
// the carrier with its propagator: `const carrier = {}; propagation.inject(context.active(),
// carrier); job.trace = carrier;` (@opentelemetry/api). This script takes the context from
// TRACEPARENT (and TRACESTATE), the variables OpenTelemetry uses to pass it to a process.
function withTrace(job) {
  const { TRACEPARENT: traceparent, TRACESTATE: tracestate } = process.env;
  if (traceparent) {
    job.trace = { traceparent };
    if (tracestate) job.trace.tracestate = tracestate;
  }
  return job;
}

async function main() {
  const [path, streamArg] = process.argv.slice(2);
  const stream = streamArg ?? process.env.PAYWORKER_STREAM ?? DEFAULT_STREAM;
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

  let job;
  if (path === undefined) job = withTrace(sampleJob());
  else if (path === '-') job = JSON.parse(readFileSync(0, 'utf8'));
  else job = JSON.parse(readFileSync(path, 'utf8'));

  const payload = JSON.stringify(job);
  if (Buffer.byteLength(payload, 'utf8') > MAX_JOB_BYTES) {
    throw new Error(`job is larger than ${MAX_JOB_BYTES} bytes`);
  }

  // No reconnect loop: a producer script should fail fast when Redis is down.
  const client = createClient({ url, socket: { connectTimeout: 5000, reconnectStrategy: false } });
  client.on('error', () => {}); // errors surface as rejected promises below
  await client.connect();
  try {
    // The whole contract: one XADD, auto id, exactly one field named "job".
    const id = await client.xAdd(stream, '*', { job: payload });
    console.log(id);
  } finally {
    await client.close();
  }
}

main().catch((err) => {
  console.error(`produce.mjs: ${err?.message ?? err}`);
  process.exit(1);
});
