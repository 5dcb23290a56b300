//! Time buckets: how the ingress remembers fingerprints and nonces for a while with a few
//! Redis keys instead of one per notification. Pure arithmetic over milliseconds; the
//! store turns it into key names and the Lua step.
//!
//! What is remembered for `keep` goes into the set of the bucket its write time falls in,
//! `width = ceil(keep / 6)` wide; a set expires as a whole once its last member has been
//! kept for `keep`. A lookup reads the current bucket, the six before it (they cover `keep`)
//! and the next one: another ingress whose clock runs ahead may already write there. So a
//! lookup reads [`LOOKUPS`] sets, and a member is remembered for at least `keep` and at most
//! `keep` plus one width (on average a twelfth longer than `keep`).
//!
//! The clock is the ingress's own (`now_ms`), because a Lua step must name every key it
//! touches before it runs. Clocks of several ingresses that differ by less than a width
//! change nothing at a bucket's start (the next bucket is read); at the far end a member
//! written by an ingress whose clock ran behind may be forgotten that much earlier than
//! `keep`. NTP keeps hosts within milliseconds; the widths are 28 hours for the default
//! `dedupe_for` and 110 seconds for the default nonce cache.

use std::time::Duration;

/// Sets a lookup reads: the current bucket, the six before it, the next one.
pub const LOOKUPS: usize = 8;

/// Buckets that together span the retention.
const SPAN: u64 = LOOKUPS as u64 - 2;

/// The buckets of one retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    width_ms: u64,
    keep_ms: u64,
}

impl Buckets {
    /// Buckets for what is kept `keep` (at least a millisecond wide).
    pub fn for_retention(keep: Duration) -> Buckets {
        let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX / 4);
        Buckets {
            width_ms: keep_ms.div_ceil(SPAN).max(1),
            keep_ms,
        }
    }

    /// How much time one bucket holds.
    pub fn width(&self) -> Duration {
        Duration::from_millis(self.width_ms)
    }

    /// The bucket that `now_ms` (Unix milliseconds) falls in.
    pub fn index(&self, now_ms: u64) -> u64 {
        now_ms / self.width_ms
    }

    /// The buckets a lookup at `now_ms` reads, the one a write goes to first.
    pub fn lookup(&self, now_ms: u64) -> [u64; LOOKUPS] {
        let current = self.index(now_ms);
        let mut buckets = [current; LOOKUPS];
        for (back, bucket) in buckets.iter_mut().enumerate().take(LOOKUPS - 1) {
            *bucket = current.saturating_sub(back as u64);
        }
        buckets[LOOKUPS - 1] = current + 1;
        buckets
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
    fn the_default_retentions_give_28_hour_and_110_second_buckets() {
        let fingerprints = Buckets::for_retention(WEEK);
        assert_eq!(fingerprints.width(), Duration::from_secs(28 * 3600));
        let nonces = Buckets::for_retention(Duration::from_secs(2 * 300 + 60));
        assert_eq!(nonces.width(), Duration::from_secs(110));
    }

    #[test]
    fn a_lookup_reads_the_current_bucket_first_six_before_and_the_next() {
        let b = Buckets::for_retention(Duration::from_millis(6_000));
        assert_eq!(b.lookup(10_500), [10, 9, 8, 7, 6, 5, 4, 11]);
        assert_eq!(b.lookup(1_000), [1, 0, 0, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn what_was_written_is_found_and_alive_for_the_whole_retention() {
        // Every write time and every later lookup within `keep`, on a small scale: the
        // write's bucket is among those read, and still alive.
        for keep_ms in [1, 5, 6, 7, 13, 600] {
            let b = Buckets::for_retention(Duration::from_millis(keep_ms));
            for written in 1_000..1_000 + 3 * keep_ms {
                let bucket = b.index(written);
                let dies = written + b.ttl_ms(written);
                for read in written..=written + keep_ms {
                    assert!(
                        b.lookup(read).contains(&bucket),
                        "keep {keep_ms}: written {written}, read {read}"
                    );
                    assert!(read < dies || keep_ms == 0, "keep {keep_ms}: expired");
                }
                // Never kept longer than a width past the retention.
                assert!(b.ttl_ms(written) <= keep_ms + b.width_ms);
            }
        }
    }

    #[test]
    fn a_clock_ahead_by_less_than_a_width_writes_where_the_others_read() {
        let b = Buckets::for_retention(Duration::from_secs(660));
        let width = b.width_ms;
        for now in [0, 1, width - 1, width, 5 * width + 17] {
            let ahead = b.index(now + 1_000 + width / 2);
            assert!(b.lookup(now + 1_000).contains(&ahead), "at {now}");
        }
    }

    #[test]
    fn keys_name_the_width_and_the_bucket() {
        let b = Buckets::for_retention(Duration::from_secs(660));
        assert_eq!(b.key("p:{q:0}:fps", 7), "p:{q:0}:fps:110000:7");
    }
}
