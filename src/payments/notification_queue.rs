//! The `process_notification` queue as those who append to it see it: which partition a
//! notification goes to, and the cap of its dead-letter streams. The ingress appends what
//! it accepts, the orphan review re-queues and dead-letters what waited for its order; both
//! must pick the same partition for the same notification (by fingerprint), so that copies
//! of one notification meet in one partition and are applied once. Built once from the
//! settings (`startup::notification_queue`) and shared.

use payworker_queue::QueueKeys;

use crate::jobs::queues;

/// The `process_notification` queue's partitions and dead-letter cap.
#[derive(Debug, Clone)]
pub struct NotificationQueue {
    /// Redis key prefix.
    pub prefix: String,
    /// Partitions of the queue.
    pub partitions: u32,
    /// Cap of its dead-letter streams.
    pub dlq_max_len: usize,
}

impl NotificationQueue {
    /// The partition a notification goes to: by fingerprint, so copies meet.
    pub fn keys_for(&self, fingerprint: &str) -> QueueKeys {
        let hash = fingerprint
            .get(..8)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        QueueKeys::new(
            &self.prefix,
            queues::PROCESS_NOTIFICATION,
            hash % self.partitions.max(1),
        )
    }
}
