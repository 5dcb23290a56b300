//! Delayed retries: any number due at once is promoted in bounded steps and processed.

use std::time::Duration;

use payworker_queue::envelope::RetryEnvelope;

use super::*;
use payworker_testkit::{eventually, unique_prefix};

#[tokio::test]
async fn twenty_thousand_retries_due_at_once_are_all_promoted_and_processed() {
    let prefix = unique_prefix("due20k");
    let mut config = config(&prefix);
    config.concurrency = 64;
    let keys = keys(&config);
    let mut conn = redis().await;
    // 20,000 retries, all due at the same past moment, as the worker itself writes them.
    let due = payworker_queue::now_ms() - 1_000;
    for chunk in (0..20_000u64).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &n in chunk {
            let envelope = RetryEnvelope {
                job: ping(n),
                attempt: 1,
                origin_id: format!("0-{n}"),
                first_failed_ms: due,
                errors: vec![],
            };
            pipe.zadd(
                &keys.delayed,
                serde_json::to_string(&envelope).unwrap(),
                due,
            )
            .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }

    let runs = Runs::default();
    let worker = start(config, &runs);
    eventually(Duration::from_secs(120), || async {
        (runs.total() == 20_000).then_some(())
    })
    .await;
    worker.stop().await;

    assert_eq!(runs.distinct(), 20_000);
    assert_eq!(runs.max_per_job(), 1);
    let left: u64 = conn.zcard(&keys.delayed).await.unwrap();
    assert_eq!(left, 0);
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test]
async fn a_failed_job_waits_in_the_delayed_set_with_its_history() {
    let (prefix, config, keys, mut conn) = setup("retryafter").await;
    enqueue(
        &mut conn,
        &keys.stream,
        [r#"{"version":1,"n":1,"fail":1}"#.to_owned()],
    )
    .await;
    let runs = Runs::default();
    let worker = start(config, &runs);
    // After the first failure the retry sits in the delayed set, keyed by the job's origin,
    // with a due time in the future and its envelope beside it.
    let (origin, envelope) = eventually(Duration::from_secs(10), || async {
        let mut c = redis().await;
        let members: Vec<(String, f64)> = c.zrange_withscores(&keys.delayed, 0, -1).await.ok()?;
        let origin = members.first()?.0.clone();
        let envelope: String = c.hget(&keys.delayed_jobs, &origin).await.ok()?;
        Some((origin, envelope))
    })
    .await;
    let envelope: RetryEnvelope = serde_json::from_str(&envelope).unwrap();
    assert_eq!(envelope.origin_id, origin);
    assert_eq!(envelope.attempt, 1);
    assert_eq!(envelope.errors[0].error, "boom 1");
    eventually(Duration::from_secs(10), || async {
        (runs.total() == 1).then_some(())
    })
    .await;
    worker.stop().await;
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test]
async fn a_deferred_job_spends_no_attempt_however_often_it_is_deferred() {
    let (prefix, config, keys, mut conn) = setup("deferred").await;
    assert_eq!(config.retry.max_attempts, 4);
    // Deferred six times (more than `max_attempts`), then three failures: it succeeds on
    // its fourth attempt, the last one allowed, only if no deferral was counted.
    enqueue(
        &mut conn,
        &keys.stream,
        [r#"{"version":1,"n":1,"defer":6,"fail":3}"#.to_owned()],
    )
    .await;
    let runs = Runs::default();
    let worker = start(config, &runs);
    // While deferred, the job waits in the delayed set with no attempt and no error.
    let envelope = eventually(Duration::from_secs(10), || async {
        let mut c = redis().await;
        let origins: Vec<String> = c.zrange(&keys.delayed, 0, -1).await.ok()?;
        let envelope: String = c.hget(&keys.delayed_jobs, origins.first()?).await.ok()?;
        Some(envelope)
    })
    .await;
    let envelope: RetryEnvelope = serde_json::from_str(&envelope).unwrap();
    assert_eq!(envelope.attempt, 0);
    assert!(envelope.errors.is_empty());
    eventually(Duration::from_secs(20), || async {
        (runs.total() == 1).then_some(())
    })
    .await;
    worker.stop().await;
    assert_eq!(runs.deferred(1), 6);
    assert!(dlq(&mut conn, &keys).await.is_empty());
    cleanup(&mut conn, &prefix).await;
}
