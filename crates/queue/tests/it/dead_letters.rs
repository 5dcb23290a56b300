//! Bad input never stops a worker: it is dead-lettered at once with a reason, and the
//! other jobs flow. Card data never survives into a dead letter.

use payworker_queue as queue;
use std::time::Duration;

use super::*;
use payworker_testkit::eventually;

#[tokio::test]
async fn poison_payloads_are_dead_lettered_with_reasons_while_jobs_flow() {
    let (prefix, config, keys, mut conn) = setup("poison").await;
    let bad: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("not_json", vec![("job", "{this is not json".into())]),
        ("invalid", vec![("job", r#"{"version":1}"#.into())]),
        (
            "invalid",
            vec![("job", r#"{"version":1,"n":1,"extra":true}"#.into())],
        ),
        ("invalid", vec![("job", r#"{"version":2,"n":1}"#.into())]),
        (
            "oversize",
            vec![(
                "job",
                format!(r#"{{"version":1,"n":1,"end":"{}"}}"#, "x".repeat(5000)),
            )],
        ),
        ("no_job_field", vec![("payload", ping(1))]),
        (
            "no_job_field",
            vec![("job", ping(1)), ("other", "x".into())],
        ),
        (
            "invalid",
            vec![(
                "job",
                r#"{"version":1,"n":9,"card":{"number":"4242424242424242","cvc":"987"}}"#.into(),
            )],
        ),
    ];
    enqueue(&mut conn, &keys.stream, (0..100).map(ping)).await;
    for (_, fields) in &bad {
        let _: String = conn.xadd(&keys.stream, "*", fields).await.unwrap();
    }
    enqueue(&mut conn, &keys.stream, (100..200).map(ping)).await;

    let runs = Runs::default();
    let worker = start(config, &runs);
    eventually(Duration::from_secs(20), || async {
        (runs.total() == 200).then_some(())
    })
    .await;
    let letters = eventually(Duration::from_secs(10), || async {
        let letters = dlq(&mut redis().await, &keys).await;
        (letters.len() == bad.len()).then_some(letters)
    })
    .await;
    worker.stop().await;

    let reasons: Vec<&str> = letters.iter().map(|l| l["reason"].as_str()).collect();
    let expected: Vec<&str> = bad.iter().map(|(r, _)| *r).collect();
    assert_eq!(reasons, expected);
    assert!(
        letters[1]["detail"].contains("missing field `n`"),
        "{:?}",
        letters[1]
    );
    assert!(
        letters[2]["detail"].contains("unknown field `extra`"),
        "{:?}",
        letters[2]
    );
    assert!(
        letters[3]["detail"].contains("unknown version 2"),
        "{:?}",
        letters[3]
    );
    assert!(
        letters[4]["detail"].contains("limit is 4096"),
        "{:?}",
        letters[4]
    );
    for letter in &letters {
        for (field, value) in letter {
            assert!(
                !value.contains("4242424242424242") && !value.contains("987\""),
                "{field} leaks card data: {value}"
            );
        }
        assert!(letter.contains_key("worker") && letter.contains_key("dead_ms"));
    }
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_dead_lettered_with_its_history() {
    let (prefix, config, keys, mut conn) = setup("exhausted").await;
    enqueue(
        &mut conn,
        &keys.stream,
        [
            r#"{"version":1,"n":1,"fail":100}"#.to_owned(),
            r#"{"version":1,"n":2,"end":"give_up"}"#.to_owned(),
            r#"{"version":1,"n":3,"end":"panic"}"#.to_owned(),
            r#"{"version":1,"n":4,"fail":2}"#.to_owned(),
        ],
    )
    .await;
    let runs = Runs::default();
    let worker = start(config, &runs);
    let letters = eventually(Duration::from_secs(20), || async {
        let letters = dlq(&mut redis().await, &keys).await;
        (letters.len() == 3 && runs.total() == 1).then_some(letters)
    })
    .await;
    worker.stop().await;

    let by_reason = |r: &str| letters.iter().find(|l| l["reason"] == r).unwrap().clone();
    let exhausted = by_reason("exhausted");
    assert_eq!(exhausted["attempts"], "4");
    assert!(exhausted["detail"].contains("gave up after 4 attempts"));
    let history: Vec<serde_json::Value> = serde_json::from_str(&exhausted["errors"]).unwrap();
    let errors: Vec<&str> = history
        .iter()
        .map(|e| e["error"].as_str().unwrap())
        .collect();
    assert_eq!(errors, ["boom 1", "boom 2", "boom 3", "boom 4"]);
    assert!(exhausted["first_failed_ms"] < exhausted["last_failed_ms"]);
    assert_eq!(exhausted["job"], r#"{"version":1,"n":1,"fail":100}"#);

    let gave_up: Vec<_> = letters
        .iter()
        .filter(|l| l["reason"] == "gave_up")
        .collect();
    assert_eq!(gave_up.len(), 2);
    assert!(
        gave_up
            .iter()
            .any(|l| l["detail"] == "job 2 cannot succeed" && l["attempts"] == "1")
    );
    assert!(gave_up.iter().any(|l| l["detail"].contains("panicked")));
    assert_eq!(
        runs.0.lock().unwrap().get(&4),
        Some(&1),
        "job 4 succeeded on its third attempt"
    );
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test]
async fn a_dead_letter_can_be_redriven() {
    let (prefix, config, keys, mut conn) = setup("redrive").await;
    // Dead-letter a job by giving up, then re-drive a corrected copy's letter.
    enqueue(
        &mut conn,
        &keys.stream,
        [r#"{"version":1,"n":7,"fail":100}"#.to_owned()],
    )
    .await;
    let runs = Runs::default();
    let mut short = config.clone();
    short.retry.max_attempts = 1;
    let worker = start(short, &runs);
    let (id, origin) = eventually(Duration::from_secs(10), || async {
        let mut c = queue::RedisTarget::Single(REDIS.into())
            .connect(Duration::from_secs(5))
            .await
            .ok()?;
        let (id, fields) = queue::dlq::list(&mut c, &keys, 10)
            .await
            .ok()?
            .into_iter()
            .next()?;
        let origin = fields.into_iter().find(|(k, _)| k == "origin_id")?.1;
        Some((id, origin))
    })
    .await;
    worker.stop().await;

    let mut c = queue::RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap();
    let new_id = queue::dlq::redrive(&mut c, &keys, &id).await.unwrap();
    assert_ne!(new_id, id);
    assert_eq!(queue::dlq::len(&mut c, &keys).await.unwrap(), 0);
    // Back as the same job: its origin and history kept, a fresh attempt budget.
    let entries: redis::streams::StreamRangeReply =
        conn.xrange(&keys.stream, &new_id, &new_id).await.unwrap();
    let retry: String = redis::from_redis_value(entries.ids[0].map["retry"].clone()).unwrap();
    let again: payworker_queue::envelope::RetryEnvelope = serde_json::from_str(&retry).unwrap();
    assert_eq!(again.job, r#"{"version":1,"n":7,"fail":100}"#);
    assert_eq!(again.attempt, 0);
    assert_eq!(again.errors.len(), 1, "the history is kept");
    assert_eq!(
        again.origin_id, origin,
        "the producer's entry stays the job's origin"
    );
    cleanup(&mut conn, &prefix).await;
}

/// A queue's validator (rules that need the process's configuration) refuses a job: it is
/// dead-lettered as `invalid` with the validator's detail and never runs, also when it
/// comes back as a retry entry (its attempts and history kept), while the others flow.
#[tokio::test]
async fn a_job_the_queues_validator_refuses_is_dead_lettered_invalid_and_never_runs() {
    use payworker_queue::envelope::{ErrorRecord, RetryEnvelope};
    use payworker_queue::{Invalid, Validator};

    let (_prefix, config, keys, mut conn) = setup("validated").await;
    enqueue(&mut conn, &keys.stream, (0..50).map(ping)).await;
    enqueue(&mut conn, &keys.stream, [ping(1000)]).await;
    let retry = RetryEnvelope {
        job: ping(1001),
        attempt: 2,
        origin_id: "1-0".into(),
        first_failed_ms: 5,
        errors: vec![ErrorRecord {
            attempt: 2,
            at_ms: 6,
            worker: "w-1".into(),
            error: "boom".into(),
        }],
    };
    let _: String = conn
        .xadd(
            &keys.stream,
            "*",
            &[("retry", serde_json::to_string(&retry).unwrap())],
        )
        .await
        .unwrap();
    enqueue(&mut conn, &keys.stream, (50..100).map(ping)).await;

    let runs = Runs::default();
    let validator: Validator<Ping> = std::sync::Arc::new(|ping: &Ping| {
        if ping.n < 1000 {
            Ok(())
        } else {
            Err(Invalid("n: must be below 1000 on this worker".into()))
        }
    });
    let cancel = CancellationToken::new();
    let join = tokio::spawn(
        queue::Queue::new(config, RedisTarget::Single(REDIS.into()))
            .validate(validator)
            .run(runs.handler(), cancel.clone(), Duration::from_secs(10)),
    );
    let letters = eventually(Duration::from_secs(20), || async {
        let letters = dlq(&mut redis().await, &keys).await;
        (runs.total() == 100 && letters.len() == 2).then_some(letters)
    })
    .await;
    cancel.cancel();
    join.await.unwrap().unwrap();

    assert_eq!(
        runs.distinct(),
        100,
        "only the jobs the validator accepts ran"
    );
    for letter in &letters {
        assert_eq!(letter["reason"], "invalid", "{letter:?}");
        assert_eq!(letter["detail"], "n: must be below 1000 on this worker");
    }
    assert_eq!(letters[0]["job"], ping(1000));
    assert_eq!(letters[1]["job"], ping(1001));
    assert_eq!(letters[1]["attempts"], "2", "{:?}", letters[1]);
    assert!(letters[1]["errors"].contains("boom"), "{:?}", letters[1]);
}
