//! Time buckets: how the ingress remembers fingerprints and nonces for a while with a few
//! Redis keys instead of one per notification. Pure arithmetic over milliseconds; the
//! store turns it into key names and the Lua step.
//!
//! What is remembered for `keep` goes into the set of the bucket its write time falls in,
//! `width = ceil(keep / span)` wide; a set expires as a whole once its last member has been
//! kept for `keep`. A lookup reads the current bucket, the `span` before it (together they
//! cover `keep`) and the next one: another ingress whose clock runs ahead may already write
//! there. So a member is remembered for at least `keep` and at most `keep` plus one width
//! (on average half a width more).
//!
//! The span trades Redis calls for memory: each set a lookup reads is a `SISMEMBER`, about
//! a microsecond of Redis' time, and narrower buckets let members outlive the retention by
//! less. Fingerprints are kept for days, so their buckets are a third of `dedupe_for` wide
//! (56 hours by default): a member outlives `dedupe_for` by a sixth on average, and a lookup
//! reads 5 sets. Nonces are kept for minutes and cost little memory, so one bucket spans the
//! whole cache (11 minutes by default) and a lookup reads 3.
//!
//! The clock is the application's (`crate::clock::now_ms`), because a Lua step must name every key it
//! touches before it runs. Clocks of several ingresses that differ by less than a width
//! change nothing at a bucket's start (the next bucket is read); at the far end a member
//! written by an ingress whose clock ran behind may be forgotten that much earlier than
//! `keep`. NTP keeps hosts within milliseconds of each other.

use std::time::Duration;

/// The buckets of one retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    width_ms: u64,
    keep_ms: u64,
    /// Buckets that together span the retention.
    span: u64,
}

impl Buckets {
    /// Buckets for fingerprints kept `keep` (`ingress.dedupe_for`): a third of it wide, read
    /// 5 at a time.
    pub fn fingerprints(keep: Duration) -> Buckets {
        Buckets::new(keep, 3)
    }

    /// Buckets for nonces kept `keep` (twice the timestamp window plus a minute): one spans
    /// it, read 3 at a time.
    pub fn nonces(keep: Duration) -> Buckets {
        Buckets::new(keep, 1)
    }

    fn new(keep: Duration, span: u64) -> Buckets {
        let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX / 4);
        Buckets {
            width_ms: keep_ms.div_ceil(span).max(1),
            keep_ms,
            span,
        }
    }

    /// How much time one bucket holds.
    pub fn width(&self) -> Duration {
        Duration::from_millis(self.width_ms)
    }

    /// How many sets a lookup reads.
    pub fn lookups(&self) -> usize {
        usize::try_from(self.span).unwrap_or(usize::MAX) + 2
    }

    /// The bucket that `now_ms` (Unix milliseconds) falls in.
    pub fn index(&self, now_ms: u64) -> u64 {
        now_ms / self.width_ms
    }

    /// The buckets a lookup at `now_ms` reads: the current one (where a write goes) first,
    /// then the `span` before it, then the next one.
    pub fn lookup(&self, now_ms: u64) -> impl Iterator<Item = u64> {
        let current = self.index(now_ms);
        (0..=self.span)
            .map(move |back| current.saturating_sub(back))
            .chain([current + 1])
    }

    /// How long, from `now_ms`, the current bucket must live: until its end plus the
    /// retention, so that its last member is kept for `keep`.
    pub fn ttl_ms(&self, now_ms: u64) -> u64 {
        let end = (self.index(now_ms) + 1) * self.width_ms;
        end - now_ms + self.keep_ms
    }

    /// The key of bucket `index` under `base`. The width is part of the name, so that
    /// ingresses configured with different retentions (during a change of
    /// `ingress.dedupe_for`) never read each other's buckets as their own.
    pub fn key(&self, base: &str, index: u64) -> String {
        format!("{base}:{}:{index}", self.width_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

    #[test]
    fn the_default_retentions_give_56_hour_and_11_minute_buckets() {
        let fingerprints = Buckets::fingerprints(WEEK);
        assert_eq!(fingerprints.width(), Duration::from_secs(56 * 3600));
        assert_eq!(fingerprints.lookups(), 5);
        let nonces = Buckets::nonces(Duration::from_secs(2 * 300 + 60));
        assert_eq!(nonces.width(), Duration::from_secs(660));
        assert_eq!(nonces.lookups(), 3);
    }

    #[test]
    fn a_lookup_reads_the_current_bucket_first_those_before_and_the_next() {
        let b = Buckets::fingerprints(Duration::from_millis(3_000));
        let read: Vec<u64> = b.lookup(10_500).collect();
        assert_eq!(read, [10, 9, 8, 7, 11]);
        let read: Vec<u64> = b.lookup(1_000).collect();
        assert_eq!(read, [1, 0, 0, 0, 2]);
        let n = Buckets::nonces(Duration::from_millis(6_000));
        assert_eq!(n.lookup(13_000).collect::<Vec<_>>(), [2, 1, 3]);
    }

    #[test]
    fn what_was_written_is_found_and_alive_for_the_whole_retention() {
        // Every write time and every later lookup within `keep`, on a small scale: the
        // write's bucket is among those read, and still alive; never kept longer than a
        // width past the retention.
        for keep_ms in [1, 5, 6, 7, 13, 600] {
            let keep = Duration::from_millis(keep_ms);
            for b in [Buckets::fingerprints(keep), Buckets::nonces(keep)] {
                for written in 1_000..1_000 + 3 * keep_ms {
                    let bucket = b.index(written);
                    let dies = written + b.ttl_ms(written);
                    for read in written..=written + keep_ms {
                        assert!(
                            b.lookup(read).any(|i| i == bucket),
                            "{b:?}: written {written}, read {read}"
                        );
                        assert!(read < dies, "{b:?}: expired");
                    }
                    assert!(b.ttl_ms(written) <= keep_ms + b.width_ms);
                }
            }
        }
    }

    #[test]
    fn a_clock_ahead_by_less_than_a_width_writes_where_the_others_read() {
        let keep = Duration::from_secs(660);
        for b in [Buckets::fingerprints(keep), Buckets::nonces(keep)] {
            let width = b.width_ms;
            for now in [0, 1, width - 1, width, 5 * width + 17] {
                let ahead = b.index(now + 1_000 + width / 2);
                assert!(b.lookup(now + 1_000).any(|i| i == ahead), "at {now}");
            }
        }
    }

    #[test]
    fn keys_name_the_width_and_the_bucket() {
        let b = Buckets::fingerprints(Duration::from_secs(660));
        assert_eq!(b.key("p:{q:0}:fps", 7), "p:{q:0}:fps:220000:7");
    }
}
