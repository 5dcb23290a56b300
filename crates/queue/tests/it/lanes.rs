//! Lanes: a checkout (the `interactive` lane) never waits behind a deep backlog of
//! recurring charges (the `batch` lane), and the batch lane still gets its share. The
//! acceptance test: 50,000 batch jobs queued, interactive jobs arriving at a steady rate;
//! the interactive jobs' pickup latency (from the `XADD`, the entry id's time, to the
//! handler's start) stays within the lane's target at p99, while batch jobs keep completing.
//! A second load, checkouts that need most of the slots, is where the weights decide.
//!
//! Baselines (ignored: run them by name for their figures): the same load on one lane, where
//! each checkout waits for the whole backlog ahead of it (seconds), and the heavy load with
//! even weights, where the checkouts fall behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use payworker_queue::{self as queue, JobError, JobMeta, Lane, QueueKeys, RedisTarget};
use payworker_testkit::{eventually, unique_prefix};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::*;

/// The interactive lane's pickup target.
const TARGET: Duration = Duration::from_millis(250);
/// Interactive jobs are numbered from here on.
const INTERACTIVE: u64 = 1_000_000_000;

/// A scenario's load: a batch backlog, then checkouts at a steady rate.
#[derive(Clone, Copy)]
struct Load {
    /// Batch jobs queued before the first checkout arrives.
    backlog: u64,
    /// Checkouts sent every 10 ms, and for how many seconds.
    per_10ms: u64,
    seconds: u64,
    /// Jobs at once in the worker.
    concurrency: usize,
    /// Each job works this long.
    work: Duration,
}

impl Load {
    fn checkouts(self) -> usize {
        usize::try_from(self.per_10ms * 100 * self.seconds).unwrap()
    }
}

/// The issue's load: 50,000 batch jobs, 20 checkouts a second for 10 s, 5 ms runs.
const ISSUE: Load = Load {
    backlog: 50_000,
    per_10ms: 0, // see `ISSUE_EVERY`: one checkout every 50 ms
    seconds: 10,
    concurrency: 32,
    work: Duration::from_millis(5),
};

/// The issue's rate, one checkout every this long (20/s).
const ISSUE_EVERY: Duration = Duration::from_millis(50);

/// Checkouts that need most of the slots: 300/s of 25 ms runs want 7.5 of the 14 slots
/// (about 12 once the idle default lane's reader holds its two), more than an even split
/// gives them (6), less than their weight's 8 of 9.
const HEAVY: Load = Load {
    backlog: 5_000,
    per_10ms: 3,
    seconds: 5,
    concurrency: 14,
    work: Duration::from_millis(25),
};

#[derive(Debug, Deserialize)]
struct Charge {
    n: u64,
}

impl queue::Job for Charge {}

/// What one run of the scenario measured.
struct Figures {
    /// Each checkout's pickup latency, in ms, sorted.
    pickups: Vec<u64>,
    /// Batch jobs completed while checkouts arrived.
    batch_in_window: u64,
    /// All jobs completed while checkouts arrived.
    all_in_window: u64,
}

impl Figures {
    /// The `pct` percentile in ms; none started reads as never.
    fn percentile(&self, pct: usize) -> u64 {
        let at = (self.pickups.len() * pct).div_ceil(100).max(1) - 1;
        self.pickups.get(at).copied().unwrap_or(u64::MAX)
    }

    fn print(&self, what: &str) {
        println!(
            "{what}: {} checkouts, pickup p50 {} ms, p99 {} ms, max {} ms; \
             batch jobs done meanwhile {} of {} jobs",
            self.pickups.len(),
            self.percentile(50),
            self.percentile(99),
            self.pickups.last().copied().unwrap_or(0),
            self.batch_in_window,
            self.all_in_window,
        );
    }
}

/// Queues the backlog on `batch`, starts a worker, then sends checkouts to `interactive`
/// at a steady rate and measures them. Waits up to `settle` after the last checkout for
/// every checkout to start.
async fn scenario(
    name: &str,
    load: Load,
    lanes: Vec<Lane>,
    (batch, interactive): (Option<&str>, Option<&str>),
    settle: Duration,
) -> Figures {
    let work = load.work;
    let prefix = unique_prefix(name);
    let mut config = config(&prefix);
    config.concurrency = load.concurrency;
    config.lanes = lanes;
    let batch = QueueKeys::on_lane(&prefix, &config.name, batch, 0);
    let interactive = QueueKeys::on_lane(&prefix, &config.name, interactive, 0);
    let mut conn = redis().await;
    for chunk in (0..load.backlog).collect::<Vec<_>>().chunks(5_000) {
        enqueue(
            &mut conn,
            &batch.stream,
            chunk.iter().map(|n| format!(r#"{{"n":{n}}}"#)),
        )
        .await;
    }

    let batch_done = Arc::new(AtomicU64::new(0));
    let pickups = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let batch_done = batch_done.clone();
        let pickups = pickups.clone();
        move |job: Charge, meta: JobMeta| {
            let batch_done = batch_done.clone();
            let pickups = pickups.clone();
            async move {
                if job.n >= INTERACTIVE {
                    let added: u64 = meta.entry_id.split('-').next().unwrap().parse().unwrap();
                    let waited = queue::now_ms().saturating_sub(added);
                    pickups.lock().unwrap().push(waited);
                }
                tokio::time::sleep(work).await;
                if job.n < INTERACTIVE {
                    batch_done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<(), JobError>(())
            }
        }
    };
    let stop = CancellationToken::new();
    let worker = tokio::spawn(queue::run(
        config,
        RedisTarget::Single(REDIS.into()),
        handler,
        stop.clone(),
        Duration::from_secs(10),
    ));
    // The backlog is being worked through: checkouts arrive behind it.
    eventually(Duration::from_secs(20), || async {
        (batch_done.load(Ordering::Relaxed) >= load.backlog / 50).then_some(())
    })
    .await;

    let before = batch_done.load(Ordering::Relaxed);
    let (every, per_tick, all) = if load.per_10ms == 0 {
        let all = load.seconds * 1000 / u64::try_from(ISSUE_EVERY.as_millis()).unwrap();
        (ISSUE_EVERY, 1, usize::try_from(all).unwrap())
    } else {
        (Duration::from_millis(10), load.per_10ms, load.checkouts())
    };
    let mut tick = tokio::time::interval(every);
    let mut n = INTERACTIVE;
    while n < INTERACTIVE + all as u64 {
        tick.tick().await;
        enqueue(
            &mut conn,
            &interactive.stream,
            (n..n + per_tick).map(|n| format!(r#"{{"n":{n}}}"#)),
        )
        .await;
        n += per_tick;
    }
    // Every checkout started (or the baseline's backlog is too deep to wait for).
    let _ = tokio::time::timeout(settle, async {
        while pickups.lock().unwrap().len() < all {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let batch_in_window = batch_done.load(Ordering::Relaxed) - before;
    stop.cancel();
    worker.await.unwrap().unwrap();
    cleanup(&mut conn, &prefix).await;

    let mut pickups = pickups.lock().unwrap().clone();
    pickups.sort_unstable();
    let all_in_window = batch_in_window + pickups.len() as u64;
    Figures {
        pickups,
        batch_in_window,
        all_in_window,
    }
}

/// An `interactive` lane of `weight` and a `batch` lane of weight 1.
fn lanes(weight: u32) -> Vec<Lane> {
    vec![
        Lane {
            target_pickup: Some(TARGET),
            ..Lane::new("interactive", weight)
        },
        Lane::new("batch", 1),
    ]
}

/// Every checkout started, within the target at p99, and the batch lane got at least its
/// weight's share (1 of 9) of what ran meanwhile.
fn assert_within_target_and_batch_progressed(figures: &Figures, sent: usize) {
    assert_eq!(figures.pickups.len(), sent, "every checkout ran");
    let p99 = Duration::from_millis(figures.percentile(99));
    assert!(
        p99 <= TARGET,
        "p99 pickup {p99:?} over the target {TARGET:?}"
    );
    assert!(
        figures.batch_in_window * 9 >= figures.all_in_window && figures.batch_in_window > 0,
        "batch lane starved: {} of {}",
        figures.batch_in_window,
        figures.all_in_window
    );
}

const LANES: (Option<&str>, Option<&str>) = (Some("batch"), Some("interactive"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkouts_are_picked_up_within_target_behind_a_deep_batch_backlog() {
    let figures = scenario("lanes", ISSUE, lanes(8), LANES, Duration::from_secs(2)).await;
    figures.print("issue load, lanes interactive 8, batch 1");
    assert_within_target_and_batch_progressed(&figures, 200);
}

/// Where the weights matter: checkouts that need more than an even share of the slots get
/// them while the batch lane keeps its ninth. (With weights 1 and 1, the gate's even split
/// leaves them short and their wait grows for as long as they come.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkouts_needing_most_of_the_slots_get_them_by_weight() {
    let figures = scenario(
        "lanes-heavy",
        HEAVY,
        lanes(8),
        LANES,
        Duration::from_secs(2),
    )
    .await;
    figures.print("heavy checkouts, lanes interactive 8, batch 1");
    assert_within_target_and_batch_progressed(&figures, HEAVY.checkouts());
}

/// [`checkouts_needing_most_of_the_slots_get_them_by_weight`] with even weights: the
/// checkouts fall behind. Ignored (it waits for their backlog): run it by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the even split the weights improve on: run it by name for its figures"]
async fn with_even_weights_heavy_checkouts_fall_behind() {
    let figures = scenario(
        "lanes-even",
        HEAVY,
        lanes(1),
        LANES,
        Duration::from_secs(30),
    )
    .await;
    figures.print("heavy checkouts, lanes interactive 1, batch 1");
    let p99 = Duration::from_millis(figures.percentile(99));
    assert!(
        p99 > TARGET,
        "p99 pickup {p99:?} within target with even weights"
    );
}

/// The same load without lanes: checkouts queue behind the backlog. Not run by default
/// (it waits for seconds of backlog); run it by name to see the figures lanes improve on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the baseline lanes improve on: run it by name for its figures"]
async fn without_lanes_checkouts_wait_behind_the_backlog() {
    let figures = scenario(
        "nolanes",
        ISSUE,
        Vec::new(),
        (None, None),
        Duration::from_secs(30),
    )
    .await;
    figures.print("issue load, one lane");
    let p99 = Duration::from_millis(figures.percentile(99));
    assert!(
        p99 > TARGET,
        "p99 pickup {p99:?} within target without lanes"
    );
}

/// With as many slots as partitions, each partition's worker keeps one claim (two would let
/// a worker idling on an empty stream hold the slot another partition's jobs wait for):
/// jobs on every partition of every lane run, whichever stream filled first.
#[tokio::test]
async fn with_one_slot_per_partition_every_partition_runs() {
    let prefix = unique_prefix("lanes-scarce");
    let mut config = config(&prefix);
    config.partitions = 2;
    config.lanes = vec![Lane::new("batch", 1)];
    let keys = config.keys();
    config.concurrency = keys.len();
    let mut conn = redis().await;
    let runs = Runs::default();
    let worker = start(config, &runs);
    // Let every worker settle on its empty stream first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, k) in keys.iter().enumerate() {
        let i = i as u64;
        enqueue(&mut conn, &k.stream, (i * 10..i * 10 + 5).map(ping)).await;
    }
    let all = keys.len() * 5;
    eventually(Duration::from_secs(10), || async {
        (runs.distinct() == all).then_some(())
    })
    .await;
    worker.stop().await;
    cleanup(&mut conn, &prefix).await;
}
