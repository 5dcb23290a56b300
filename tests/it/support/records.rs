//! Payment records written as the worker leaves them, for tests that start from a payment
//! in a given state rather than driving one there.

use payworker::payments::{orphans, record};

/// Claims the record of `order_no` (account `main`, 20.99 EUR, `method`, version 2, one
/// attempt, owned by job `owner`) in `status`, with `extra` fields; returns its key.
/// Panics if the record already existed.
pub async fn seed_record(
    conn: &mut payworker_queue::RedisConn,
    prefix: &str,
    (order_no, status, method, owner): (&str, &str, &str, &str),
    extra: &[(&str, &str)],
) -> String {
    let key = record::key(prefix, "main", order_no);
    let mut fields: Vec<(&str, String)> = vec![
        ("status", status.into()),
        ("version", "2".into()),
        ("owner", owner.into()),
        ("attempts", "1".into()),
        ("account", "main".into()),
        ("order_no", order_no.into()),
        ("amount", "20.99".into()),
        ("currency", "EUR".into()),
        ("method", method.into()),
    ];
    fields.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let orphans = orphans::key(prefix, "main", order_no);
    let claim = record::claim(conn, &key, &orphans, &fields).await;
    assert!(claim.unwrap().created, "{key} existed already");
    key
}
