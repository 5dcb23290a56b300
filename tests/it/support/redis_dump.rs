//! Reading any Redis key back as text, whatever its type: the tests that prove card data
//! and keys are kept nowhere search every value a run left behind, so one reader must know
//! every type the application writes.

use redis::AsyncCommands;

/// The value of `key` as `(type, text)`, or `None` when the key is gone (expired since it
/// was listed). Panics on a type the application never writes, so that a new one is read
/// rather than silently skipped.
pub async fn key_as_text(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
) -> Option<(String, String)> {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
    let cmd = match kind.as_str() {
        "string" => redis::cmd("GET").arg(key).to_owned(),
        "hash" => redis::cmd("HGETALL").arg(key).to_owned(),
        "stream" => redis::cmd("XRANGE").arg(key).arg("-").arg("+").to_owned(),
        "zset" => redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .to_owned(),
        "set" => redis::cmd("SMEMBERS").arg(key).to_owned(),
        "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).to_owned(),
        "none" => return None,
        other => panic!("{key}: a key of type {other} the test cannot read"),
    };
    let value: redis::Value = cmd.query_async(conn).await.unwrap();
    let mut text = String::new();
    value_text(&value, &mut text);
    Some((kind, text))
}

/// Every key of the server and its value, whatever its type, as text: `("<type> <key>",
/// "<key>\n<value>")` (for a test whose Redis is its own, such as the stress test's).
pub async fn dump(conn: &mut redis::aio::ConnectionManager) -> Vec<(String, String)> {
    let mut names: Vec<String> = Vec::new();
    let mut iter: redis::AsyncIter<String> = conn.scan().await.unwrap();
    while let Some(name) = iter.next_item().await {
        names.push(name.unwrap());
    }
    drop(iter);
    let mut out = Vec::new();
    for name in names {
        // None: expired since the scan.
        if let Some((kind, value_text)) = key_as_text(conn, &name).await {
            out.push((format!("{kind} {name}"), format!("{name}\n{value_text}")));
        }
    }
    out
}

/// Renders any Redis value as text, to be searched: bulk strings lossily as UTF-8, one
/// line per item of an array or set, `key=value` per entry of a map.
fn value_text(value: &redis::Value, out: &mut String) {
    match value {
        redis::Value::BulkString(b) => out.push_str(&String::from_utf8_lossy(b)),
        redis::Value::SimpleString(s) => out.push_str(s),
        redis::Value::Int(i) => out.push_str(&i.to_string()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            for item in items {
                value_text(item, out);
                out.push('\n');
            }
        }
        redis::Value::Map(pairs) => {
            for (k, v) in pairs {
                value_text(k, out);
                out.push('=');
                value_text(v, out);
                out.push('\n');
            }
        }
        other => out.push_str(&format!("{other:?}")),
    }
}
