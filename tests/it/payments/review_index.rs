//! The index of payments in `review_required` (`<prefix>:payments:review`, scored by the
//! time each entered review): kept by the same write as the status (the change script, and
//! the re-drive's mark that reopens a dead-lettered payment), counted and listed oldest
//! first, and swept of entries whose payment left review some other way; on a Cluster too,
//! where the index lies in another slot than the record and is written as its own step.

use payworker::payments::resolve::{Decision, Resolution};
use payworker::payments::{ReviewEntry, review_key, unknown_key};

use super::*;
use crate::support::RedisCluster;

/// A record written as the worker would leave it in `status`, on the shared Redis.
async fn craft(prefix: &str, order_no: &str, status: &str, extra: &[(&str, &str)]) -> String {
    craft_on(&mut redis_conn().await, prefix, order_no, status, extra).await
}

/// [`craft`] on `conn`.
async fn craft_on(
    conn: &mut queue::RedisConn,
    prefix: &str,
    order_no: &str,
    status: &str,
    extra: &[(&str, &str)],
) -> String {
    crate::support::seed_record(conn, prefix, (order_no, status, "host", "1-0"), extra).await
}

async fn store(prefix: &str, sandbox: &SandboxHandle) -> Arc<PaymentStore> {
    store_on(prefix, sandbox, &RedisTarget::Single(REDIS.into())).await
}

async fn store_on(
    prefix: &str,
    sandbox: &SandboxHandle,
    target: &RedisTarget,
) -> Arc<PaymentStore> {
    let results = format!("{prefix}:{{results}}");
    handler(prefix, &results, sandbox, target, Duration::from_secs(60))
        .await
        .store
}

async fn indexed(prefix: &str) -> Vec<(String, f64)> {
    redis()
        .await
        .zrange_withscores(review_key(prefix), 0, -1)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_payment_entering_review_is_indexed_at_that_time_and_leaves_when_resolved() {
    let prefix = unique_prefix("review-index");
    let sandbox = test_sandbox().await;
    let store = store(&prefix, &sandbox).await;
    let key = craft(&prefix, "RI-1", "unknown", &[]).await;
    // Overdue: the review hands it to a person, through the change script.
    let _: i64 = redis()
        .await
        .zadd(unknown_key(&prefix), &key, queue::now_ms() - 1)
        .await
        .unwrap();
    assert_eq!(store.count_review_required().await.unwrap(), 0);

    let before = queue::now_ms();
    assert_eq!(store.review_overdue_unknowns().await.unwrap(), 1);
    let after = queue::now_ms();
    let rec = record::read(&mut redis_conn().await, &key).await.unwrap();
    assert_eq!(rec.get("status"), Some("review_required"));
    assert_eq!(store.count_review_required().await.unwrap(), 1);
    let listed = store.list_review_required(0, 10).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let ReviewEntry {
        key: listed_key,
        entered_ms,
    } = &listed[0];
    assert_eq!(listed_key, &key);
    assert!(
        (before..=after).contains(entered_ms),
        "entered at {entered_ms}, the change ran in {before}..={after}"
    );
    assert!(store.list_review_required(1, 10).await.unwrap().is_empty());
    assert!(store.list_review_required(0, 0).await.unwrap().is_empty());

    // A person's decision takes it out of review, and off the index in the same write.
    let decision = Decision {
        resolution: Resolution::Failed,
        reason: "checked with the gateway's support".into(),
        by: "alice".into(),
        payment_id: None,
    };
    store.resolve("main", "RI-1", &decision).await.unwrap();
    assert_eq!(store.count_review_required().await.unwrap(), 0);
    assert!(indexed(&prefix).await.is_empty());
    crate::support::cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test]
async fn a_dead_lettered_payment_reopened_by_its_redrive_leaves_the_index() {
    let prefix = unique_prefix("review-index");
    let index = review_key(&prefix);
    let key = craft(
        &prefix,
        "RI-2",
        "review_required",
        &[("review_cause", "dead_lettered")],
    )
    .await;
    let _: i64 = redis().await.zadd(&index, &key, 1_000).await.unwrap();
    let mut conn = redis_conn().await;

    // A mark at a version that moved writes nothing, and the entry stays.
    let stale = record::mark(&mut conn, &key, 1, None, 2, Some(&index)).await;
    assert_eq!(stale.unwrap(), None);
    assert_eq!(indexed(&prefix).await.len(), 1);

    let marked = record::mark(&mut conn, &key, 2, None, 2, Some(&index)).await;
    assert!(marked.unwrap().is_some());
    let rec = record::read(&mut conn, &key).await.unwrap();
    assert_eq!(rec.get("status"), Some("pending"));
    assert!(indexed(&prefix).await.is_empty());
    crate::support::cleanup(&mut redis().await, &prefix).await;
}

#[tokio::test]
async fn the_sweep_takes_off_entries_whose_payment_left_review_and_keeps_the_rest() {
    let prefix = unique_prefix("review-index");
    let sandbox = test_sandbox().await;
    let store = store(&prefix, &sandbox).await;
    let index = review_key(&prefix);
    let waiting = craft(&prefix, "RI-WAITING", "review_required", &[]).await;
    let settled = craft(&prefix, "RI-SETTLED", "succeeded", &[]).await;
    let gone = record::key(&prefix, "main", "RI-GONE");
    let young = record::key(&prefix, "main", "RI-YOUNG");
    let old = queue::now_ms() - 120_000;
    let mut c = redis().await;
    for (key, at) in [
        (&waiting, old),
        (&settled, old + 1),
        (&gone, old + 2),
        // Its change may be under way (a Cluster adds the entry first): left alone.
        (&young, queue::now_ms()),
    ] {
        let _: i64 = c.zadd(&index, key, at).await.unwrap();
    }

    assert_eq!(store.sweep_review(0).await.unwrap(), 0, "one page: round");
    let left: Vec<String> = indexed(&prefix).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, [waiting, young]);
    assert_eq!(store.count_review_required().await.unwrap(), 2);
    crate::support::cleanup(&mut c, &prefix).await;
}

#[tokio::test]
async fn on_a_cluster_the_index_follows_the_status_from_another_slot() {
    let cluster = RedisCluster::start().await;
    let prefix = unique_prefix("review-index-cluster");
    let sandbox = test_sandbox().await;
    let target = RedisTarget::Cluster(cluster.nodes());
    let store = store_on(&prefix, &sandbox, &target).await;
    let mut conn = target.connect(Duration::from_secs(5)).await.unwrap();
    let index = review_key(&prefix);
    let key = craft_on(&mut conn, &prefix, "RI-C1", "unknown", &[]).await;
    let mut client = cluster.client().await;
    let slot = |k: String| {
        let mut client = client.clone();
        async move {
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(k)
                .query_async::<i64>(&mut client)
                .await
                .unwrap()
        }
    };
    assert_ne!(slot(key.clone()).await, slot(index.clone()).await);
    let _: i64 = client
        .zadd(unknown_key(&prefix), &key, queue::now_ms() - 1)
        .await
        .unwrap();

    // In review: written in steps (the record's slot, then the index's), listed.
    assert_eq!(store.review_overdue_unknowns().await.unwrap(), 1);
    let listed = store.list_review_required(0, 10).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].key, key);
    assert_eq!(store.count_review_required().await.unwrap(), 1);

    // Out of review by a person's decision: off the index.
    let decision = Decision {
        resolution: Resolution::Failed,
        reason: "checked with the gateway's support".into(),
        by: "alice".into(),
        payment_id: None,
    };
    store.resolve("main", "RI-C1", &decision).await.unwrap();
    assert_eq!(store.count_review_required().await.unwrap(), 0);

    // A dead-lettered payment reopened by its re-drive leaves it too.
    let reopened = craft_on(
        &mut conn,
        &prefix,
        "RI-C2",
        "review_required",
        &[("review_cause", "dead_lettered")],
    )
    .await;
    let _: i64 = client.zadd(&index, &reopened, 1_000).await.unwrap();
    let marked = record::mark(&mut conn, &reopened, 2, None, 2, Some(&index)).await;
    assert!(marked.unwrap().is_some());
    assert_eq!(store.count_review_required().await.unwrap(), 0);

    // The sweep reads records in other slots than the index: a stale entry goes, a
    // payment still in review stays.
    let waiting = craft_on(&mut conn, &prefix, "RI-C3", "review_required", &[]).await;
    let gone = record::key(&prefix, "main", "RI-C-GONE");
    let old = queue::now_ms() - 120_000;
    for (key, at) in [(&waiting, old), (&gone, old + 1)] {
        let _: i64 = client.zadd(&index, key, at).await.unwrap();
    }
    assert_eq!(store.sweep_review(0).await.unwrap(), 0);
    let left: Vec<String> = client.zrange(&index, 0, -1).await.unwrap();
    assert_eq!(left, [waiting]);
}

async fn redis_conn() -> queue::RedisConn {
    RedisTarget::Single(REDIS.into())
        .connect(Duration::from_secs(5))
        .await
        .unwrap()
}
