//! A stale copy of an S2S job: a worker paused past its lease (SIGSTOP, a long GC-like
//! stall, a starved VM) while another worker took the job over and is sending its charge.
//! When the paused worker resumes, the run it had already fetched must not start: it must not
//! claim the order, declare the payment `unknown`, or publish anything for a job it no
//! longer owns.
//!
//! The pause is real: worker A runs on a runtime of its own, in a thread of its own, and its
//! first run blocks that thread, so nothing of A (its lease renewals included) moves, as
//! with a stopped process. Worker B is a second, live worker on the same queue. The stale
//! run may also be its job's last attempt: it then must not dead-letter the payment either
//! (the queue writes no dead letter for an entry another worker owns, so a payment put up
//! for review would wait for a re-drive of a letter that does not exist).

use std::sync::atomic::{AtomicBool, Ordering};

use payworker_sandbox::{Fault, FaultRule};
use tokio::sync::mpsc;

use super::*;

/// The queue lease of both workers; A's pause is several leases long.
const LEASE: Duration = Duration::from_millis(600);
/// How long worker A stays paused once it has fetched the job.
const PAUSE: Duration = Duration::from_millis(2500);
/// How long B's request is on the wire: A resumes while B still sends (and holds the send
/// mark, for S2S).
const B_SENDING: Duration = Duration::from_secs(3);

/// The `CreatePayment` handler, patient enough to wait for B's slow answer.
async fn payments(prefix: &str, results: &str, sandbox: &SandboxHandle) -> Arc<CreatePayments> {
    let target = RedisTarget::Single(REDIS.into());
    let mut payments = handler(prefix, results, sandbox, &target, Duration::from_secs(3600)).await;
    payments.client = GatewayClient::new(&ClientOptions {
        request_timeout: B_SENDING * 2,
        ..ClientOptions::default()
    })
    .unwrap();
    Arc::new(payments)
}

fn queue_config(prefix: &str) -> queue::QueueConfig {
    let mut cfg = config(prefix);
    cfg.name = "create_payment".into();
    cfg.lease = LEASE;
    cfg.reclaim_interval = Duration::from_millis(200);
    cfg
}

/// What the scenario left: the order's record once B's run ended, its events (type and
/// reason), A's stale run's result, the dead letters.
struct Left {
    record: record::Record,
    events: Vec<String>,
    stale: String,
    letters: usize,
}

/// A fetches the entry `fields` (the job of `order_no`) and is paused past its lease; B takes
/// it over and sends its request, which the gateway answers only after A has resumed.
async fn stale_copy(order_no: &str, fields: (&str, String)) -> (Left, Arc<SandboxHandle>) {
    let prefix = crate::support::unique_prefix("stale");
    let results = format!("{prefix}:{{results}}");
    let sandbox = Arc::new(test_sandbox().await);
    sandbox.add_fault(FaultRule::times(Fault::Latency(B_SENDING), 1).for_order(order_no));
    let keys = QueueKeys::new(&prefix, "create_payment", 0);
    let target = RedisTarget::Single(REDIS.into());

    // Worker A: paused (its whole runtime blocked) as its first run starts.
    let (fetched_tx, mut fetched) = mpsc::unbounded_channel::<()>();
    let (ended_tx, mut ended) = mpsc::unbounded_channel::<String>();
    let stop_a = CancellationToken::new();
    let worker_a = {
        let (prefix, results, sandbox, target) = (
            prefix.clone(),
            results.clone(),
            sandbox.clone(),
            target.clone(),
        );
        let stop = stop_a.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let payments = payments(&prefix, &results, &sandbox).await;
                let hook = payworker::startup::dead_letter_hook(payments.clone());
                let paused = Arc::new(AtomicBool::new(false));
                let run = move |job: CreatePayment, meta: queue::JobMeta| {
                    let (payments, paused) = (payments.clone(), paused.clone());
                    let (fetched_tx, ended_tx) = (fetched_tx.clone(), ended_tx.clone());
                    async move {
                        let first = !paused.swap(true, Ordering::SeqCst);
                        if first {
                            let _ = fetched_tx.send(());
                            // The pause: this thread, and so all of worker A, stops here.
                            std::thread::sleep(PAUSE);
                        }
                        let result = payments.handle(job, meta).await;
                        if first {
                            let _ = ended_tx.send(format!("{result:?}"));
                        }
                        result
                    }
                };
                queue::Queue::new(queue_config(&prefix), target)
                    .on_dead(hook)
                    .run(run, stop, Duration::from_secs(5))
                    .await
                    .unwrap();
            });
        })
    };

    let _: String = redis()
        .await
        .xadd(&keys.stream, "*", &[fields])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), fetched.recv())
        .await
        .expect("worker A never fetched the job");

    // Worker B: live; it takes the entry over once A's lease has lapsed, claims the order and
    // sends the request, which the gateway answers only after A has resumed.
    let payments_b = payments(&prefix, &results, &sandbox).await;
    let stop_b = CancellationToken::new();
    let worker_b = {
        let hook = payworker::startup::dead_letter_hook(payments_b.clone());
        let run = move |job: CreatePayment, meta: queue::JobMeta| {
            let payments = payments_b.clone();
            async move { payments.handle(job, meta).await }
        };
        tokio::spawn(
            queue::Queue::new(queue_config(&prefix), target.clone())
                .on_dead(hook)
                .run(run, stop_b.clone(), Duration::from_secs(5)),
        )
    };

    let stale = tokio::time::timeout(Duration::from_secs(10), ended.recv())
        .await
        .expect("worker A's stale run never ended")
        .unwrap();
    // B's run has ended (and acked the entry), whatever A did meanwhile.
    eventually(Duration::from_secs(10), || async {
        let left: u64 = redis().await.xlen(&keys.stream).await.ok()?;
        (left == 0).then_some(())
    })
    .await;
    let mut conn = target.connect(Duration::from_secs(5)).await.unwrap();
    let record = record::read(&mut conn, &record::key(&prefix, "main", order_no))
        .await
        .unwrap();
    let events: redis::streams::StreamRangeReply =
        redis().await.xrange_all(&results).await.unwrap();
    let events = events
        .ids
        .iter()
        .map(|e| {
            let text: String = redis::from_redis_value(e.map["event"].clone()).unwrap();
            let event: serde_json::Value = serde_json::from_str(&text).unwrap();
            format!("{} ({})", event["type"], event["data"]["reason"])
        })
        .collect();
    let letters = crate::support::dlq(&mut redis().await, &keys).await.len();

    stop_b.cancel();
    worker_b.await.unwrap().unwrap();
    stop_a.cancel();
    worker_a.join().unwrap();
    crate::support::cleanup(&mut redis().await, &prefix).await;
    let left = Left {
        record,
        events,
        stale,
        letters,
    };
    (left, sandbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_past_its_lease_leaves_alone_the_payment_another_worker_is_sending() {
    let job = s2s_job("STALE-1", "4242424242424242");
    let (left, sandbox) = stale_copy("STALE-1", ("job", job.to_string())).await;
    let seen = sandbox.order(ACCOUNT_ID, "STALE-1").unwrap();
    assert_eq!(seen.charges, 1, "charged {} times", seen.charges);
    assert_eq!(
        left.events.len(),
        1,
        "worker A's stale run (it ended with {}) acted on a job it no longer owned; \
         events: {:?}",
        left.stale,
        left.events
    );
    assert!(
        left.events[0].contains("payment.succeeded"),
        "{:?}",
        left.events
    );
    assert_eq!(left.record.get("status"), Some("succeeded"));
}

/// The stale run is the job's last attempt (a retry of attempt 3 of 4): its retry is
/// exhausted, but the job is B's now, which creates the payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_last_attempt_does_not_dead_letter_the_payment_another_worker_is_creating() {
    let last = payworker_queue::envelope::RetryEnvelope {
        job: job("host", "STALE-2").to_string(),
        attempt: config("p").retry.max_attempts - 1,
        origin_id: "1-0".into(),
        first_failed_ms: payworker_queue::now_ms(),
        errors: vec![],
    };
    let (left, _) = stale_copy("STALE-2", ("retry", serde_json::to_string(&last).unwrap())).await;
    assert_eq!(
        (left.record.get("status"), left.events.len()),
        (Some("created"), 1),
        "worker A's stale last attempt (it ended with {}) acted on a job it no longer owned: \
         the payment B created is {} ({}), dead letters: {}, events: {:?}",
        left.stale,
        left.record.get("status").unwrap_or_default(),
        left.record.get("reason").unwrap_or_default(),
        left.letters,
        left.events
    );
    assert!(
        left.events[0].contains("payment.created"),
        "{:?}",
        left.events
    );
}
