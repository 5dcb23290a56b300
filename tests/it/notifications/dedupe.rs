//! What the ingress remembers to deduplicate, and what that costs Redis: the keys under a
//! prefix stay few however many notifications are stored, a fingerprint and a nonce are found
//! across a bucket boundary, what the previous version wrote (a key per fingerprint and per
//! nonce) is still read, and the bytes per stored notification are measured against the
//! key-per-entry layout on a private `redis-server`.
//!
//! These tests drive the ingress's `Store` directly (the step behind `POST /notify`), so that
//! thousands of notifications take a second; the HTTP door is covered by `ingress` and
//! `hardening`.

use std::time::Duration;

use futures_util::StreamExt as _;
use payworker::config::{AccountSettings, Settings};
use payworker::ingress::{Ingress, Store, Stored, Target};
use payworker_gateway::Oncestr;
use payworker_queue::QueueKeys;
use redis::AsyncCommands;

use crate::payments::{ACCOUNT_ID, KEY};
use crate::support::{REDIS, redis};
use crate::support::{RedisServer, unique_prefix};

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
const WINDOW: Duration = Duration::from_secs(300);

/// The ingress's store for `prefix` on the Redis at `url`.
async fn store_for(url: &str, prefix: &str, dedupe_for: Duration, window: Duration) -> Store {
    let mut settings = Settings::default();
    settings.redis.url = url.into();
    settings.redis.key_prefix = prefix.into();
    settings.gateway.accounts.insert(
        "main".into(),
        AccountSettings::new(
            "http://127.0.0.1:9/".parse().unwrap(),
            ACCOUNT_ID,
            "https://shop.example.com",
            KEY.to_owned().into(),
        ),
    );
    settings.ingress.dedupe_for = dedupe_for;
    settings.ingress.timestamp_window = window;
    settings.ingress.redis_timeout = Duration::from_secs(5);
    Ingress::from_settings(&settings).await.unwrap().store
}

/// A notification as the store sees it: its fingerprint (128 bits, hex) and its nonce.
#[derive(Clone)]
struct Seen {
    fingerprint: String,
    oncestr: String,
}

impl Seen {
    fn random() -> Seen {
        Seen {
            fingerprint: hex::encode(rand::random::<[u8; 16]>()),
            oncestr: Oncestr::random(&mut rand::rng()).as_str().to_owned(),
        }
    }

    async fn store(&self, store: &Store) -> Stored {
        let job = format!("{{\"fingerprint\":\"{}\"}}", self.fingerprint);
        store
            .store(
                &self.fingerprint,
                ACCOUNT_ID,
                &self.oncestr,
                Target::Queue(&job),
            )
            .await
            .unwrap()
    }
}

/// Stores `n` distinct notifications, 64 at a time; each must be new.
async fn store_many(store: &Store, n: usize) -> Vec<Seen> {
    let seen: Vec<Seen> = (0..n).map(|_| Seen::random()).collect();
    let outcomes: Vec<Stored> = futures_util::stream::iter(seen.iter())
        .map(|s| s.store(store))
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(outcomes.iter().all(|o| *o == Stored::New), "all new");
    seen
}

async fn keys_under(conn: &mut impl redis::aio::ConnectionLike, prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_under_the_prefix_stay_few_however_many_notifications_are_stored() {
    const N: usize = 2_000;
    let prefix = unique_prefix("dedupe-keys");
    let store = store_for(REDIS, &prefix, WEEK, WINDOW).await;
    let seen = store_many(&store, N).await;

    let keys = keys_under(&mut redis().await, &prefix).await;
    // The stream, and for fingerprints and nonces the current bucket (and the next one, if
    // the test ran across a boundary).
    assert!(
        keys.len() <= 1 + 2 * 2,
        "{} keys under the prefix after {N} notifications, e.g. {:?}",
        keys.len(),
        &keys[..keys.len().min(3)]
    );

    // Still remembered, every one: the same notification again is a duplicate, a new one
    // under a nonce already seen is a replay.
    for s in &seen[..100] {
        assert_eq!(s.store(&store).await, Stored::Duplicate);
        let reused = Seen {
            oncestr: s.oncestr.clone(),
            ..Seen::random()
        };
        assert_eq!(reused.store(&store).await, Stored::Replay);
    }
    let stream = QueueKeys::new(&prefix, "process_notification", 0).stream;
    let stored: usize = redis().await.xlen(&stream).await.unwrap();
    assert_eq!(stored, N, "nothing appended twice");
    crate::support::cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fingerprint_and_a_nonce_are_found_across_a_bucket_boundary() {
    use payworker::ingress::Buckets;
    use payworker_queue::now_ms;
    // Fingerprints kept 12 s in buckets of 4 s; nonces kept 6 s in one bucket of 6 s.
    let prefix = unique_prefix("dedupe-boundary");
    let mut store = store_for(REDIS, &prefix, Duration::from_secs(12), WINDOW).await;
    store.nonce_for = Duration::from_secs(6);
    let fingerprints = Buckets::fingerprints(store.dedupe_for);
    let nonces = Buckets::nonces(store.nonce_for);
    assert_eq!(fingerprints.width(), Duration::from_secs(4));
    assert_eq!(nonces.width(), Duration::from_secs(6));

    // Stored well inside its buckets, so that the clock read here is the one the step used.
    let buckets = |now| (fingerprints.index(now), nonces.index(now));
    let (stored, (fp_at, nonce_at)) = loop {
        let before = buckets(now_ms());
        let s = Seen::random();
        assert_eq!(s.store(&store).await, Stored::New);
        if buckets(now_ms()) == before {
            break (s, before);
        }
    };
    // A boundary of each later: at most 6 s on, inside both retentions; a bucket is read
    // until one more boundary of its kind has passed, seconds later.
    crate::support::eventually(Duration::from_secs(10), || async {
        let (fp, nonce) = buckets(now_ms());
        (fp > fp_at && nonce > nonce_at).then_some(())
    })
    .await;
    let reused = Seen {
        oncestr: stored.oncestr.clone(),
        ..Seen::random()
    };
    assert_eq!(reused.store(&store).await, Stored::Replay, "nonce");
    assert_eq!(stored.store(&store).await, Stored::Duplicate, "fingerprint");
    let stream = QueueKeys::new(&prefix, "process_notification", 0).stream;
    let appended: usize = redis().await.xlen(&stream).await.unwrap();
    assert_eq!(appended, 1);
    crate::support::cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_previous_version_remembered_is_still_read() {
    let prefix = unique_prefix("dedupe-upgrade");
    let store = store_for(REDIS, &prefix, WEEK, WINDOW).await;
    let stream = QueueKeys::new(&prefix, "process_notification", 0).stream;
    let mut conn = redis().await;
    // As the previous version left them: a key per fingerprint, a key per nonce.
    let old = Seen::random();
    let _: () = conn
        .pset_ex(format!("{stream}:fp:{}", old.fingerprint), "1", 60_000)
        .await
        .unwrap();
    let _: () = conn
        .pset_ex(
            format!("{stream}:nonce:{ACCOUNT_ID}:{}", old.oncestr),
            "1",
            60_000,
        )
        .await
        .unwrap();

    let copy = Seen {
        oncestr: Seen::random().oncestr,
        ..old.clone()
    };
    assert_eq!(
        copy.store(&store).await,
        Stored::Duplicate,
        "old fingerprint"
    );
    let reused = Seen {
        oncestr: old.oncestr.clone(),
        ..Seen::random()
    };
    assert_eq!(reused.store(&store).await, Stored::Replay, "old nonce");
    let appended: usize = conn.xlen(&stream).await.unwrap();
    assert_eq!(appended, 0);
    crate::support::cleanup(&mut conn, &prefix).await;
}

/// `used_memory` from `INFO memory`: the bytes Redis' allocator holds for the data set.
async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

/// Bytes per notification between two `used_memory` readings.
fn per(before: i64, after: i64, n: usize) -> i64 {
    (after - before) / i64::try_from(n).unwrap()
}

/// Redis bytes per stored notification for what deduplication keeps (fingerprint and
/// nonce), after 100,000 notifications: a key each, as the previous version wrote them,
/// against the time-bucketed sets. Rerun with
/// `cargo nextest run -E 'test(/bytes_per_notification/)' --no-capture` for the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bytes_per_notification_for_deduplication_are_a_fraction_of_a_key_each() {
    const N: usize = 100_000;
    let server = RedisServer::start().await;
    let mut conn = server
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let prefix = "payworker";
    let stream = QueueKeys::new(prefix, "process_notification", 0).stream;
    let seen: Vec<Seen> = (0..N).map(|_| Seen::random()).collect();

    // A key per fingerprint, then a key per nonce, as the previous version's script set them.
    let mut readings = vec![used_memory(&mut conn).await];
    for family in ["fp", "nonce"] {
        for chunk in seen.chunks(1_000) {
            let mut pipe = redis::pipe();
            for s in chunk {
                let (key, ms) = match family {
                    "fp" => (format!("{stream}:fp:{}", s.fingerprint), 7 * 24 * 3_600_000),
                    _ => (
                        format!("{stream}:nonce:{ACCOUNT_ID}:{}", s.oncestr),
                        660_000,
                    ),
                };
                pipe.cmd("SET").arg(key).arg("1").arg("PX").arg(ms).ignore();
            }
            let () = pipe.query_async(&mut conn).await.unwrap();
        }
        readings.push(used_memory(&mut conn).await);
    }
    let (key_fp, key_nonce) = (
        per(readings[0], readings[1], N),
        per(readings[1], readings[2], N),
    );
    let per_key = per(readings[0], readings[2], N);
    let _: () = redis::cmd("FLUSHALL")
        .arg("SYNC")
        .query_async(&mut conn)
        .await
        .unwrap();

    // The ingress's own step; the stream it appends to is then deleted, leaving only what
    // deduplication keeps.
    let store = store_for(&server.url(), prefix, WEEK, WINDOW).await;
    let before = used_memory(&mut conn).await;
    let outcomes: Vec<Stored> = futures_util::stream::iter(seen.iter())
        .map(|s| s.store(&store))
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(outcomes.iter().all(|o| *o == Stored::New));
    let _: () = conn.del(&stream).await.unwrap();
    let bucketed = per(before, used_memory(&mut conn).await, N);
    let keys = keys_under(&mut conn, prefix).await;
    let mut sets = [0, 0];
    for key in &keys {
        let usage: i64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .unwrap();
        sets[usize::from(key.contains(":nonces:"))] += usage;
    }
    let (set_fp, set_nonce) = (per(0, sets[0], N), per(0, sets[1], N));
    eprintln!(
        "Redis bytes per notification after {N}: a key each: fingerprint {key_fp} + nonce \
         {key_nonce} = {per_key} (used_memory; {} keys); time-bucketed sets: fingerprint \
         {set_fp} + nonce {set_nonce} (MEMORY USAGE), {bucketed} in all (used_memory; {} keys)",
        2 * N,
        keys.len()
    );
    let keys = keys.len();
    assert!(keys <= 4, "{keys} keys");
    assert!(
        bucketed * 5 < per_key * 2,
        "{bucketed} bytes per notification, against {per_key} for a key each"
    );
}
