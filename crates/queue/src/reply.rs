//! Parsing stream replies (`XREADGROUP`, `XAUTOCLAIM`, `XPENDING`) from raw RESP values,
//! keeping every field in order so an entry with extra or missing fields is caught.

use redis::Value;

/// One stream entry: its id and its field/value pairs in order.
pub type Entry = (String, Vec<(String, Vec<u8>)>);

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn bytes(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        other => format!("{other:?}").into_bytes(),
    }
}

fn into_items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => Vec::new(),
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

/// Entries of an entry array `[[id, [f, v, …]], …]`; trimmed entries (nil) are skipped.
/// Consumes the reply, so field values move out without a copy.
pub fn entries(v: Value) -> Vec<Entry> {
    into_items(v)
        .into_iter()
        .filter_map(|entry| {
            let mut parts = into_items(entry).into_iter();
            let id = text(&parts.next()?)?;
            let mut flat = into_items(parts.next()?).into_iter();
            let mut fields = Vec::with_capacity(1);
            while let Some(name) = flat.next() {
                let value = flat.next().map(bytes).unwrap_or_default();
                fields.push((text(&name).unwrap_or_default(), value));
            }
            Some((id, fields))
        })
        .collect()
}

/// `XREADGROUP … STREAMS one-stream >`: the entries of the single stream, or none on timeout.
pub fn read_group(v: Value) -> Vec<Entry> {
    match v {
        Value::Nil => Vec::new(),
        Value::Map(pairs) => pairs
            .into_iter()
            .next()
            .map(|(_, e)| entries(e))
            .unwrap_or_default(),
        other => into_items(other)
            .into_iter()
            .next()
            .and_then(|stream| into_items(stream).into_iter().nth(1))
            .map(entries)
            .unwrap_or_default(),
    }
}

/// `XAUTOCLAIM`: (next cursor, claimed entries, ids deleted from the stream while pending).
pub fn autoclaim(v: Value) -> (String, Vec<Entry>, Vec<String>) {
    let mut parts = into_items(v).into_iter();
    let cursor = parts
        .next()
        .as_ref()
        .and_then(text)
        .unwrap_or_else(|| "0-0".into());
    let claimed = parts.next().map(entries).unwrap_or_default();
    let deleted = parts
        .next()
        .map(|d| items(&d).iter().filter_map(text).collect())
        .unwrap_or_default();
    (cursor, claimed, deleted)
}

/// Extended `XPENDING`: `(id, consumer, idle ms, deliveries)` per entry.
pub fn pending(v: &Value) -> Vec<(String, String, u64, u32)> {
    items(v)
        .iter()
        .filter_map(|row| {
            let r = items(row);
            let id = text(r.first()?)?;
            let consumer = text(r.get(1)?)?;
            let idle = text(r.get(2)?)?.parse().ok()?;
            let deliveries = text(r.get(3)?)?.parse().ok()?;
            Some((id, consumer, idle, deliveries))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_read_group_and_keeps_field_order() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("q"),
            Value::Array(vec![Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("job"), bulk("{}"), bulk("x"), bulk("y")]),
            ])]),
        ])]);
        let e = read_group(reply);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "1-0");
        let names: Vec<_> = e[0].1.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["job", "x"]);
        assert!(read_group(Value::Nil).is_empty());
    }

    #[test]
    fn parses_autoclaim_with_deleted_ids() {
        let reply = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![Value::Array(vec![
                bulk("2-0"),
                Value::Array(vec![bulk("job"), bulk("{}")]),
            ])]),
            Value::Array(vec![bulk("1-0")]),
        ]);
        let (cursor, claimed, deleted) = autoclaim(reply);
        assert_eq!(
            (cursor.as_str(), claimed.len(), deleted),
            ("0-0", 1, vec!["1-0".to_owned()])
        );
    }
}
