<?php
// Enqueue one payworker job with ONE command: XADD <stream> * job <json>.
//
// Usage: php produce.php [JOB_FILE|-] [STREAM]
//
// JOB_FILE is a job's JSON (a CreatePayment or ProcessNotification job, see
// jobs/*.schema.json); "-" reads it from stdin; without it a sample hosted-checkout
// CreatePayment job is built. STREAM defaults to $PAYWORKER_STREAM, then to
// payworker:{create_payment:0}. Redis is $REDIS_URL (default redis://127.0.0.1:6379).
// Prints the new entry's id.
//
// Needs the phpredis extension (Debian: `apt-get install php-cli php-redis`).

declare(strict_types=1);

const DEFAULT_STREAM = 'payworker:{create_payment:0}';
const MAX_JOB_BYTES = 64 * 1024;
// Keep "/" and non-ASCII as they are, and 1.0 as 1.0 (money is a string anyway).
const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION
    | JSON_THROW_ON_ERROR;

function fail(string $message): never
{
    fwrite(STDERR, "produce.php: $message\n");
    exit(1);
}

function sample_job(): array
{
    // Money is a decimal STRING, never a PHP float.
    $orderNo = sprintf('php-%d-%s', time(), bin2hex(random_bytes(4)));
    return [
        'version' => 1,
        'method' => 'host',
        'order_no' => $orderNo,
        'amount' => '20.99',
        'currency' => 'EUR',
        'return_url' => "https://shop.example.com/orders/$orderNo/done",
        'metadata' => ['source' => 'produce.php'],
    ];
}

/**
 * Joins the job to the caller's trace (W3C Trace Context), so the worker's spans are
 * children of it and the result events carry it. An application with OpenTelemetry fills
 * the carrier with its propagator (`TraceContextPropagator::getInstance()->inject($carrier)`,
 * then `$job['trace'] = $carrier`). This script takes the context from TRACEPARENT (and
 * TRACESTATE), the variables OpenTelemetry uses to pass it to a process.
 */
function with_trace(array $job): array
{
    $traceparent = getenv('TRACEPARENT');
    if ($traceparent !== false && $traceparent !== '') {
        $job['trace'] = ['traceparent' => $traceparent];
        $tracestate = getenv('TRACESTATE');
        if ($tracestate !== false && $tracestate !== '') {
            $job['trace']['tracestate'] = $tracestate;
        }
    }
    return $job;
}

/** Connects phpredis to redis://[user:password@]host[:port][/db] (rediss:// for TLS). */
function connect(string $url): Redis
{
    $parts = parse_url($url);
    if ($parts === false || !isset($parts['host'])) {
        fail("REDIS_URL is not a redis:// URL: $url");
    }
    $tls = ($parts['scheme'] ?? 'redis') === 'rediss';
    $redis = new Redis();
    $redis->connect(($tls ? 'tls://' : '') . $parts['host'], $parts['port'] ?? 6379, 5.0);
    if (isset($parts['pass'])) {
        $auth = isset($parts['user']) && $parts['user'] !== ''
            ? [rawurldecode($parts['user']), rawurldecode($parts['pass'])]
            : rawurldecode($parts['pass']);
        $redis->auth($auth);
    }
    $db = (int) ltrim($parts['path'] ?? '', '/');
    if ($db !== 0) {
        $redis->select($db);
    }
    return $redis;
}

$path = $argv[1] ?? null;
$stream = $argv[2] ?? (getenv('PAYWORKER_STREAM') ?: DEFAULT_STREAM);
$url = getenv('REDIS_URL') ?: 'redis://127.0.0.1:6379';

try {
    if ($path === null) {
        $payload = json_encode(with_trace(sample_job()), JSON_FLAGS);
    } else {
        $text = match ($path) {
            '-' => stream_get_contents(STDIN),
            '' => false,
            default => @file_get_contents($path),
        };
        if ($text === false) {
            fail("cannot read $path");
        }
        // Decode to objects (not arrays) so that {} stays {} when encoded again.
        $payload = json_encode(json_decode($text, false, 512, JSON_THROW_ON_ERROR), JSON_FLAGS);
    }
    if (strlen($payload) > MAX_JOB_BYTES) {
        fail('job is larger than ' . MAX_JOB_BYTES . ' bytes');
    }

    $redis = connect($url);
    // The whole contract: one XADD, auto id, exactly one field named "job".
    $id = $redis->xAdd($stream, '*', ['job' => $payload]);
    if ($id === false) {
        fail('XADD failed: ' . ($redis->getLastError() ?? 'unknown error'));
    }
    $redis->close();
    echo $id, "\n";
} catch (JsonException $e) {
    fail('not JSON: ' . $e->getMessage());
} catch (RedisException $e) {
    fail('Redis: ' . $e->getMessage());
}
