//! Redis key names of one queue partition. Every key of a partition shares one hash tag, so
//! a partition lives in one Redis Cluster slot and its multi-key steps stay atomic.

/// The keys of one partition of one queue: `<prefix>:{<queue>:<partition>}` and suffixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    /// The queue's name, e.g. `create_payment`.
    pub queue: String,
    /// The partition number.
    pub partition: u32,
    /// The job stream producers `XADD` to.
    pub stream: String,
    /// Delayed retries: a sorted set of job origins (the producer's entry id) scored by
    /// due time in milliseconds.
    pub delayed: String,
    /// The retries' envelopes: a hash from job origin to envelope, so one job has at most
    /// one scheduled retry.
    pub delayed_jobs: String,
    /// Dead letters: a stream.
    pub dlq: String,
}

/// The consumer group every worker of a queue joins.
pub const GROUP: &str = "payworker";

impl QueueKeys {
    /// The keys for `queue` partition `partition` under `prefix`.
    pub fn new(prefix: &str, queue: &str, partition: u32) -> Self {
        let stream = format!("{prefix}:{{{queue}:{partition}}}");
        QueueKeys {
            queue: queue.to_owned(),
            partition,
            delayed: format!("{stream}:delayed"),
            delayed_jobs: format!("{stream}:delayed:jobs"),
            dlq: format!("{stream}:dlq"),
            stream,
        }
    }

    /// The keys of every partition of a queue.
    pub fn all(prefix: &str, queue: &str, partitions: u32) -> Vec<Self> {
        (0..partitions.max(1))
            .map(|p| QueueKeys::new(prefix, queue, p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let k = QueueKeys::new("payworker", "create_payment", 3);
        assert_eq!(k.stream, "payworker:{create_payment:3}");
        assert_eq!(k.delayed, "payworker:{create_payment:3}:delayed");
        assert_eq!(k.delayed_jobs, "payworker:{create_payment:3}:delayed:jobs");
        assert_eq!(k.dlq, "payworker:{create_payment:3}:dlq");
        assert_eq!(QueueKeys::all("p", "q", 0).len(), 1);
    }
}
