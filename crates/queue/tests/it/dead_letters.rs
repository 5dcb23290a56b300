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
        let page = queue::dlq::page(
            &mut c,
            std::slice::from_ref(&keys),
            &queue::dlq::Filter::default(),
            None,
            10,
        )
        .await
        .ok()?;
        let letter = page.letters.into_iter().next()?;
        Some((letter.id.entry().to_owned(), letter.origin_id?))
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

/// Two operators (or one retried command) re-driving the same letter at once put its job
/// back once. Twenty re-drives share one connection and start in one poll, so Redis
/// receives every one's first command before any one's second: a re-drive that reads the
/// letter in one step and writes in another lets all twenty read it before any deletes it,
/// every time. One atomic step leaves one job and nineteen "no such letter". Deletes of
/// one letter likewise delete it once.
#[tokio::test]
async fn concurrent_redrives_of_one_letter_put_its_job_back_once() {
    let (prefix, _config, keys, mut conn) = setup("redrive-race").await;
    let letter = queue::dlq::DeadLetter {
        job: Some(ping(7)),
        reason: "gave_up".into(),
        detail: "job 7 cannot succeed".into(),
        attempts: 1,
        deliveries: 1,
        errors: Vec::new(),
        worker: "w-1".into(),
        queue: keys.queue.clone(),
        partition: 0,
        lane: None,
        origin_id: "1-0".into(),
        entry_id: "2-0".into(),
        dead_ms: queue::now_ms(),
    };
    let c = queue::RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap();
    let id = queue::dlq::push(&mut c.clone(), &keys, &letter, 100)
        .await
        .unwrap();
    let results = futures_util::future::join_all((0..20).map(|_| {
        let mut c = c.clone();
        let (keys, id) = (&keys, &id);
        async move { queue::dlq::redrive(&mut c, keys, id).await }
    }))
    .await;
    let back: usize = conn.xlen(&keys.stream).await.unwrap();
    assert_eq!(back, 1, "the job went back {back} times");
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, queue::dlq::RedriveError::NotFound(_))),
        "{results:?}"
    );
    assert_eq!(queue::dlq::len(&mut c.clone(), &keys).await.unwrap(), 0);

    // Deleting likewise: of twenty deletes of one letter, one deletes it.
    let id = queue::dlq::push(&mut c.clone(), &keys, &letter, 100)
        .await
        .unwrap();
    let deleted = futures_util::future::join_all((0..20).map(|_| {
        let mut c = c.clone();
        let (keys, id) = (&keys, &id);
        async move { queue::dlq::delete(&mut c, keys, id).await.unwrap() }
    }))
    .await;
    assert_eq!(deleted.iter().filter(|d| **d).count(), 1);
    assert_eq!(queue::dlq::len(&mut c.clone(), &keys).await.unwrap(), 0);
    cleanup(&mut conn, &prefix).await;
}

/// Paging newest first across partitions visits every letter once, also when letters
/// share an id across partitions, a partition holds more than one read's worth, and
/// letters are deleted and added between pages; filters narrow it, and a bulk action
/// reports its batches and leaves what its check leaves.
#[tokio::test]
async fn pages_visit_every_letter_once_and_bulk_actions_follow_the_filter() {
    use queue::dlq::{self, BulkAction, Filter};
    use std::collections::HashSet;

    let prefix = payworker_testkit::unique_prefix("dlq-pages");
    let mut conn = redis().await;
    let parts = queue::QueueKeys::all(&prefix, "ping", 3);
    let mut all = HashSet::new();
    for (p, keys) in parts.iter().enumerate() {
        // Partition 1 holds 450 letters (more than one read of 200); every partition has
        // letters at 1000-0..1000-9, the same ids.
        let n = if p == 1 { 450 } else { 40 };
        for i in 0..n {
            let id = if i < 10 {
                format!("1000-{i}")
            } else {
                format!("{}-0", 1000 + i)
            };
            let reason = if i % 2 == 0 { "gave_up" } else { "invalid" };
            let detail = format!("letter {p}/{i} Needle-{}", i % 5);
            let _: String = conn
                .xadd(
                    &keys.dlq,
                    &id,
                    &[
                        ("reason", reason),
                        ("detail", detail.as_str()),
                        ("job", "{\"n\":1}"),
                    ],
                )
                .await
                .unwrap();
            all.insert(format!("{p}/{id}"));
        }
    }
    let mut c = queue::RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap();
    let mut seen = HashSet::new();
    let mut cursor = None;
    let mut last: Option<(u64, u64)> = None;
    let mut pages = 0;
    loop {
        let page = dlq::page(&mut c, &parts, &Filter::default(), cursor.as_ref(), 37)
            .await
            .unwrap();
        for letter in &page.letters {
            assert!(seen.insert(letter.id.to_string()), "{} twice", letter.id);
            assert!(last.is_none_or(|l| letter.id.at() <= l), "newest first");
            last = Some(letter.id.at());
        }
        pages += 1;
        if pages == 2 {
            // Meanwhile: a newer letter arrives (not part of this walk) and one not yet
            // shown is deleted.
            let _: String = conn
                .xadd(&parts[0].dlq, "*", &[("reason", "gave_up")])
                .await
                .unwrap();
            assert!(dlq::delete(&mut c, &parts[2], "1015-0").await.unwrap());
            all.remove("2/1015-0");
        }
        match page.next {
            Some(next) => cursor = Some(next.to_string().parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, all, "every letter once");

    let text = Filter {
        reasons: vec!["invalid".into()],
        text: Some("needle-3".into()),
        since_ms: Some(1010),
        until_ms: Some(1100),
    };
    let page = dlq::page(&mut c, &parts, &text, None, 1000).await.unwrap();
    assert!(page.next.is_none());
    assert!(!page.letters.is_empty());
    for l in &page.letters {
        let at = l.id.at().0;
        assert!(
            l.reason == "invalid" && l.detail.ends_with("Needle-3") && (1010..1100).contains(&at),
            "{l:?}"
        );
    }
    let expected = all
        .iter()
        .filter(|id| {
            let (_, rest) = id.split_once('/').unwrap();
            let ms: u64 = rest.split('-').next().unwrap().parse().unwrap();
            let i = ms - 1000;
            (1010..1100).contains(&ms) && i % 2 == 1 && i % 5 == 3
        })
        .count();
    assert_eq!(page.letters.len(), expected);
    assert_eq!(
        dlq::count(&mut c, &parts, &text).await.unwrap(),
        expected as u64
    );

    // A dry run counts and changes nothing; a bulk delete leaves what its check leaves.
    let gave_up = Filter {
        reasons: vec!["gave_up".into()],
        ..Filter::default()
    };
    let before = dlq::count(&mut c, &parts, &Filter::default())
        .await
        .unwrap();
    let dry = dlq::bulk(
        &mut c,
        &parts,
        &gave_up,
        BulkAction::Delete,
        true,
        async |_: &dlq::Letter| None,
        |_: &dlq::Tally, _: &[(dlq::LetterId, dlq::Outcome)]| {},
    )
    .await
    .unwrap();
    assert_eq!(
        dry.matched,
        dlq::count(&mut c, &parts, &gave_up).await.unwrap()
    );
    assert_eq!(
        dlq::count(&mut c, &parts, &Filter::default())
            .await
            .unwrap(),
        before
    );
    let mut batches = Vec::new();
    let done = dlq::bulk(
        &mut c,
        &parts,
        &gave_up,
        BulkAction::Delete,
        false,
        async |l: &dlq::Letter| (l.partition == 0).then(|| "kept".to_owned()),
        |t: &dlq::Tally, outcomes: &[(dlq::LetterId, dlq::Outcome)]| {
            batches.push((t.clone(), outcomes.len()))
        },
    )
    .await
    .unwrap();
    assert_eq!(done.matched, dry.matched);
    assert_eq!(done.left + done.deleted, done.matched);
    assert!(batches.len() >= 2 && batches.iter().all(|(_, n)| *n <= dlq::BULK_BATCH));
    assert_eq!(batches.last().unwrap().0, done);
    assert_eq!(
        dlq::count(&mut c, &parts, &gave_up).await.unwrap(),
        done.left
    );
    cleanup(&mut conn, &prefix).await;
}
