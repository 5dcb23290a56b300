//! Redis CPU accounting: `INFO CPU` read as whole microseconds, without float arithmetic
//! (the crate denies `clippy::float_arithmetic`, tests included).

/// The CPU time the Redis server behind `conn` has used so far (`used_cpu_sys` +
/// `used_cpu_user` of `INFO CPU`), in microseconds. Take it before and after a run and divide
/// the difference by the job count for "Redis CPU per job".
///
/// Meant for a connection to one server (a `MultiplexedConnection` or `ConnectionManager`);
/// on a cluster connection `INFO` is not routed to one node, so ask each node instead.
///
/// # Panics
///
/// If the command fails or the reply has no CPU fields: this is a test helper.
pub async fn redis_cpu_micros(conn: &mut impl redis::aio::ConnectionLike) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("CPU")
        .query_async(conn)
        .await
        .expect("INFO CPU");
    parse_cpu_micros(&info).unwrap_or_else(|| panic!("no CPU fields in INFO CPU: {info:?}"))
}

/// Parses the text of `INFO CPU` into `used_cpu_sys` + `used_cpu_user` in microseconds.
/// `None` if either field is missing or is not a plain decimal number.
pub fn parse_cpu_micros(info: &str) -> Option<u64> {
    let mut sys = None;
    let mut user = None;
    for line in info.lines() {
        let line = line.trim();
        if let Some(value) = line.strip_prefix("used_cpu_sys:") {
            sys = Some(decimal_to_micros(value)?);
        } else if let Some(value) = line.strip_prefix("used_cpu_user:") {
            user = Some(decimal_to_micros(value)?);
        }
    }
    sys?.checked_add(user?)
}

/// `"12.345678"` → `12_345_678`. Digits past the sixth decimal are dropped (Redis prints six).
fn decimal_to_micros(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(frac) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let mut micros = 0_u64;
    let mut digits = frac.bytes();
    for _ in 0..6 {
        let digit = digits.next().map_or(0, |b| u64::from(b - b'0'));
        micros = micros * 10 + digit;
    }
    whole.checked_mul(1_000_000)?.checked_add(micros)
}
