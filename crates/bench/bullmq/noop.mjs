// BullMQ no-op worker throughput: the comparison point for payworker's queue benchmark.
//
//   node noop.mjs --jobs 20000 --concurrency 64 --mode drain \
//     [--redis redis://127.0.0.1:6379] [--queue bench-noop-<unique>]
//
// mode "drain": pre-enqueue --jobs jobs (addBulk, chunks of 1000), then start one Worker with
//   --concurrency and a no-op processor; time from worker start to the last `completed` event.
// mode "e2e":   the worker starts and the producer adds the jobs (chunks of 1000) while it
//   consumes; time from the start of both to the last `completed` event.
//
// Prints one JSON line:
//   {"system":"bullmq","mode":..,"jobs":..,"concurrency":..,"seconds":..,"jobs_per_sec":..,
//    "redis_cpu_us_per_job":..,"node_cpu_us_per_job":..}
// node_cpu_us_per_job is this Node process's own CPU (producer and worker). Redis CPU is `INFO CPU` (used_cpu_sys + used_cpu_user) before and after the timed part, so
// it includes anything else the same Redis serves meanwhile. Jobs use removeOnComplete, and the
// queue is obliterated at the end, so Redis memory stays flat and nothing is left behind.

import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';

const CHUNK = 1000;

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '1' },
    mode: { type: 'string', default: 'drain' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
    queue: { type: 'string', default: `bench-noop-${randomBytes(8).toString('hex')}` },
    'timeout-secs': { type: 'string', default: '300' },
  },
  strict: true,
});

const jobs = positiveInt('jobs', args.jobs);
const concurrency = positiveInt('concurrency', args.concurrency);
const timeoutMs = positiveInt('timeout-secs', args['timeout-secs']) * 1000;
const mode = args.mode;
if (mode !== 'drain' && mode !== 'e2e') {
  fail(`--mode must be drain or e2e, not ${mode}`);
}

function positiveInt(name, text) {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) fail(`--${name} must be a positive integer, not ${text}`);
  return n;
}

function fail(message) {
  console.error(`noop.mjs: ${message}`);
  process.exit(2);
}

/** `INFO CPU` → used_cpu_sys + used_cpu_user in whole microseconds. */
async function redisCpuMicros(redis) {
  const info = await redis.info('cpu');
  const field = (name) => {
    const match = info.match(new RegExp(`^${name}:(\\d+)(?:\\.(\\d+))?\\s*$`, 'm'));
    if (!match) throw new Error(`INFO CPU has no ${name}: ${info}`);
    const frac = (match[2] ?? '').padEnd(6, '0').slice(0, 6);
    return Number(match[1]) * 1_000_000 + Number(frac);
  };
  return field('used_cpu_sys') + field('used_cpu_user');
}

/** Adds `jobs` no-op jobs in addBulk chunks of CHUNK. */
async function produce(queue) {
  for (let start = 0; start < jobs; start += CHUNK) {
    const batch = [];
    for (let i = start; i < Math.min(start + CHUNK, jobs); i++) {
      batch.push({ name: 'noop', data: { i } });
    }
    await queue.addBulk(batch);
  }
}

const connection = { url: args.redis, maxRetriesPerRequest: null };
const defaultJobOptions = { removeOnComplete: true, removeOnFail: true };
const queue = new Queue(args.queue, { connection, defaultJobOptions });
const stats = new IORedis(args.redis);
let worker;

try {
  await queue.waitUntilReady();
  if (mode === 'drain') {
    await produce(queue);
    const waiting = await queue.getWaitingCount();
    if (waiting !== jobs) throw new Error(`expected ${jobs} waiting jobs, found ${waiting}`);
  }

  let completed = 0;
  let failed = 0;
  let resolveDone;
  const done = new Promise((resolve) => {
    resolveDone = resolve;
  });
  worker = new Worker(args.queue, async () => {}, { connection, concurrency, autorun: false });
  worker.on('completed', () => {
    completed += 1;
    if (completed === jobs) resolveDone();
  });
  worker.on('failed', (_job, error) => {
    failed += 1;
    console.error(`job failed: ${error?.message}`);
  });
  worker.on('error', (error) => console.error(`worker error: ${error?.message}`));
  await worker.waitUntilReady();

  const cpuBefore = await redisCpuMicros(stats);
  const nodeBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  void worker.run();
  if (mode === 'e2e') await produce(queue);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out: ${completed} of ${jobs} completed, ${failed} failed`)),
      timeoutMs,
    );
  });
  await Promise.race([done, timeout]);
  clearTimeout(timer);
  const elapsedNs = process.hrtime.bigint() - started;
  const nodeCpu = process.cpuUsage(nodeBefore);
  const cpuAfter = await redisCpuMicros(stats);

  const seconds = Number(elapsedNs) / 1e9;
  const result = {
    system: 'bullmq',
    mode,
    jobs,
    concurrency,
    seconds: Number(seconds.toFixed(3)),
    jobs_per_sec: Math.round(jobs / seconds),
    redis_cpu_us_per_job: Number(((cpuAfter - cpuBefore) / jobs).toFixed(2)),
    node_cpu_us_per_job: Number(((nodeCpu.user + nodeCpu.system) / jobs).toFixed(2)),
  };
  console.log(JSON.stringify(result));
} finally {
  if (worker) await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  await stats.quit();
}
