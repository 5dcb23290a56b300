//! Quiet (the `Quiet` switch): a quiet worker fetches nothing while the job it runs
//! finishes, keeps its lease and is acked; what it had fetched and not started goes back to
//! the group at once, even while its every slot is busy; resuming delivers the rest;
//! shutting down while quiet drains and exits. Nothing lost, nothing run twice.

use std::sync::Arc;
use std::time::Duration;

use payworker_queue::{self as queue, JobError, JobMeta, Quiet};
use payworker_testkit::eventually;
use payworker_testkit::queue_job::Running;
use tokio::sync::{Semaphore, mpsc};

use super::*;

/// How long a quiet worker is watched for a delivery it must not make: several of the
/// test queue's read and reclaim periods (`block`, `reclaim_interval`: 500 ms), and more
/// than the first test's 2 s lease, so that a lease not renewed would show.
const WATCH: Duration = Duration::from_millis(2500);

/// A worker whose job 0 runs only once the test opens its gate.
struct Gated {
    worker: Running,
    /// One permit lets job 0 finish.
    gate: Arc<Semaphore>,
    /// Job 0's entry id, when it has begun.
    started: mpsc::UnboundedReceiver<String>,
}

/// A worker of `config` with the switch `quiet`, counting every finished run into `runs`;
/// job 0 waits for its gate.
fn start_gated(
    config: queue::QueueConfig,
    runs: &Runs,
    quiet: &Quiet,
    deadline: Duration,
) -> Gated {
    let gate = Arc::new(Semaphore::new(0));
    let (started, started_rx) = mpsc::unbounded_channel();
    let inner = runs.handler();
    let held = gate.clone();
    let handler = move |ping: Ping, meta: JobMeta| {
        let (inner, gate, started) = (inner.clone(), held.clone(), started.clone());
        async move {
            if ping.n == 0 {
                let _ = started.send(meta.entry_id.clone());
                let _permit = gate
                    .acquire()
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))?;
            }
            inner(ping, meta).await
        }
    };
    let cancel = CancellationToken::new();
    let join = tokio::spawn(
        queue::Queue::new(config, RedisTarget::Single(REDIS.into()))
            .quiet(quiet.clone())
            .run(handler, cancel.clone(), deadline),
    );
    Gated {
        worker: Running { cancel, join },
        gate,
        started: started_rx,
    }
}

/// Each pending entry of the group: id, consumer, idle ms, deliveries.
async fn pending_entries(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Vec<(String, String, u64, u64)> {
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(queue::GROUP)
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query_async(conn)
        .await
        .unwrap();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_worker_fetches_nothing_finishes_its_job_and_resumes() {
    let (prefix, mut config, keys, mut conn) = setup("quiet").await;
    config.concurrency = 4;
    config.lease = Duration::from_secs(2);
    enqueue(&mut conn, &keys.stream, [ping(0)]).await;
    let runs = Runs::default();
    let quiet = Quiet::new();
    let mut gated = start_gated(config.clone(), &runs, &quiet, Duration::from_secs(10));
    let running = gated.started.recv().await.expect("job 0 starts");

    assert!(quiet.enter());
    let jobs = 20u64;
    enqueue(&mut conn, &keys.stream, (1..=jobs).map(ping)).await;
    tokio::time::sleep(WATCH).await;

    assert_eq!(runs.total(), 0, "a job ran while the worker was quiet");
    let len: u64 = conn.xlen(&keys.stream).await.unwrap();
    assert_eq!(len, jobs + 1, "an entry was acked while quiet");
    // Job 0 is still this worker's, its lease renewed past `lease`; a job pushed while
    // quiet is either undelivered or was handed back (idle past the lease, its delivery
    // uncounted): a live worker could take it now, this one does not run it.
    let held = pending_entries(&mut conn, &keys.stream).await;
    let lease_ms = config.lease.as_millis() as u64;
    for (id, consumer, idle, deliveries) in &held {
        if *id == running {
            assert!(
                *idle < lease_ms,
                "the running job's lease lapsed ({idle} ms idle)"
            );
            assert_eq!(*deliveries, 1);
        } else {
            assert!(
                *idle >= lease_ms && *deliveries == 0,
                "{id} is held by {consumer} while quiet ({idle} ms idle, {deliveries} deliveries)"
            );
        }
    }
    assert!(held.iter().any(|(id, ..)| *id == running));

    // The running job finishes while quiet and is acked; still nothing else runs.
    gated.gate.add_permits(1);
    eventually(Duration::from_secs(10), || async {
        let mut conn = conn.clone();
        let len: u64 = conn.xlen(&keys.stream).await.unwrap();
        (runs.total() == 1 && len == jobs).then_some(())
    })
    .await;
    assert!(quiet.is_quiet());

    assert!(quiet.resume());
    eventually(Duration::from_secs(20), || async {
        (runs.total() > jobs).then_some(())
    })
    .await;
    gated.worker.stop().await;
    assert_eq!(runs.distinct() as u64, jobs + 1, "a job was lost");
    assert_eq!(runs.max_per_job(), 1, "a job ran twice");
    assert_eq!(runs.total(), jobs + 1);
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    let len: u64 = conn.xlen(&keys.stream).await.unwrap();
    assert_eq!(len, 0);
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_while_quiet_drains_and_exits_within_the_deadline() {
    let (prefix, config, keys, mut conn) = setup("quiet-shutdown").await;
    let jobs = 10u64;
    enqueue(&mut conn, &keys.stream, [ping(0)]).await;
    let runs = Runs::default();
    let quiet = Quiet::new();
    let deadline = Duration::from_secs(3);
    let mut gated = start_gated(config.clone(), &runs, &quiet, deadline);
    gated.started.recv().await.expect("job 0 starts");
    quiet.enter();
    enqueue(&mut conn, &keys.stream, (1..=jobs).map(ping)).await;

    gated.worker.cancel.cancel();
    // The running job ends during the drain.
    gated.gate.add_permits(1);
    let stopped = tokio::time::timeout(deadline + Duration::from_secs(5), gated.worker.join)
        .await
        .expect("a quiet worker did not stop within its drain deadline");
    stopped.unwrap().unwrap();
    assert_eq!(runs.total(), 1, "only the running job ran");
    let len: u64 = conn.xlen(&keys.stream).await.unwrap();
    assert_eq!(len, jobs, "the running job was acked, the rest kept");

    // Another worker runs the rest, each once.
    let second = start(config, &runs);
    eventually(Duration::from_secs(20), || async {
        (runs.total() > jobs).then_some(())
    })
    .await;
    second.stop().await;
    assert_eq!(runs.distinct() as u64, jobs + 1, "a job was lost");
    assert_eq!(runs.max_per_job(), 1, "a job ran twice");
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_busy_worker_fetched_and_had_not_started_is_handed_back_when_it_turns_quiet() {
    // One job at a time: job 0 runs (held at its gate) while the rest of its batch waits in
    // the worker's buffer, already delivered to it.
    let (prefix, mut config, keys, mut conn) = setup("quiet-buffer").await;
    config.concurrency = 1;
    let jobs = 10u64;
    enqueue(&mut conn, &keys.stream, (0..=jobs).map(ping)).await;
    let runs = Runs::default();
    let quiet = Quiet::new();
    let mut gated = start_gated(config.clone(), &runs, &quiet, Duration::from_secs(10));
    let running = gated.started.recv().await.expect("job 0 starts");
    assert_eq!(
        pending(&mut conn, &keys.stream).await,
        jobs + 1,
        "one read fetched all"
    );

    // Quiet while its only slot is taken: the buffered entries go back to the group at
    // once, so a live worker takes them now, not after the 30 s lease nor when job 0 ends.
    quiet.enter();
    let other = start(config, &runs);
    eventually(Duration::from_secs(10), || async {
        (runs.total() == jobs).then_some(())
    })
    .await;
    let held = pending_entries(&mut conn, &keys.stream).await;
    assert_eq!(
        held.iter().map(|(id, ..)| id.clone()).collect::<Vec<_>>(),
        vec![running],
        "only the running job is still pending"
    );

    gated.gate.add_permits(1);
    eventually(Duration::from_secs(10), || async {
        (runs.total() > jobs).then_some(())
    })
    .await;
    other.stop().await;
    gated.worker.stop().await;
    assert_eq!(runs.distinct() as u64, jobs + 1, "a job was lost");
    assert_eq!(runs.max_per_job(), 1, "a job ran twice");
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    cleanup(&mut conn, &prefix).await;
}
