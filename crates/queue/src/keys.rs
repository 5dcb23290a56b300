//! Redis key names of one queue partition. Every key of a partition shares one hash tag, so
//! a partition lives in one Redis Cluster slot and its multi-key steps stay atomic.
//!
//! A queue may have lanes (see `lanes`): each named lane is its own set of partitions, its
//! name inside the hash tag after an `@`: `<prefix>:{<queue>@<lane>:<partition>}`. The
//! default lane keeps the names queues had before lanes, `<prefix>:{<queue>:<partition>}`,
//! so producers that name no lane are unchanged. Nothing parses these names back: a
//! partition is known by its [`QueueKeys`], and to people by its [`Place`] (`0`,
//! `batch:0`).

use std::fmt;
use std::str::FromStr;

/// The keys of one partition of one queue: `<prefix>:{<queue>:<partition>}` (or
/// `<prefix>:{<queue>@<lane>:<partition>}` on a named lane) and suffixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    /// The queue's name, e.g. `create_payment`.
    pub queue: String,
    /// The lane, `None` for the default lane.
    pub lane: Option<String>,
    /// The partition number within the lane.
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

/// The name of the default lane in configuration: the partitions without a lane in their
/// names.
pub const DEFAULT_LANE: &str = "default";

impl QueueKeys {
    /// The keys for `queue` partition `partition` (default lane) under `prefix`.
    pub fn new(prefix: &str, queue: &str, partition: u32) -> Self {
        QueueKeys::on_lane(prefix, queue, None, partition)
    }

    /// The keys for `queue` partition `partition` of `lane` (`None` or `default`: the
    /// default lane) under `prefix`.
    pub fn on_lane(prefix: &str, queue: &str, lane: Option<&str>, partition: u32) -> Self {
        let lane = lane.filter(|l| *l != DEFAULT_LANE);
        let stream = match lane {
            None => format!("{prefix}:{{{queue}:{partition}}}"),
            Some(lane) => format!("{prefix}:{{{queue}@{lane}:{partition}}}"),
        };
        QueueKeys {
            queue: queue.to_owned(),
            lane: lane.map(str::to_owned),
            partition,
            delayed: format!("{stream}:delayed"),
            delayed_jobs: format!("{stream}:delayed:jobs"),
            dlq: format!("{stream}:dlq"),
            stream,
        }
    }

    /// The keys of every partition of a queue without lanes.
    pub fn all(prefix: &str, queue: &str, partitions: u32) -> Vec<Self> {
        QueueKeys::of_queue(prefix, queue, partitions, &[] as &[&str])
    }

    /// The keys of every partition of every lane of a queue: the default lane's partitions
    /// first (so position `p` is still partition `p` of the default lane), then each of
    /// `lanes` in the order given (`default` among them is skipped: it is always there).
    /// Everything that lists a queue's streams takes them from here.
    pub fn of_queue<L: AsRef<str>>(
        prefix: &str,
        queue: &str,
        partitions: u32,
        lanes: &[L],
    ) -> Vec<Self> {
        let named = lanes
            .iter()
            .map(AsRef::as_ref)
            .filter(|l| *l != DEFAULT_LANE);
        std::iter::once(None)
            .chain(named.map(Some))
            .flat_map(|lane| {
                (0..partitions.max(1)).map(move |p| QueueKeys::on_lane(prefix, queue, lane, p))
            })
            .collect()
    }

    /// Where this partition is among its queue's: lane and partition.
    pub fn place(&self) -> Place {
        Place {
            lane: self.lane.clone(),
            partition: self.partition,
        }
    }

    /// The lane's name as configured: `default` for the default lane.
    pub fn lane_name(&self) -> &str {
        self.lane.as_deref().unwrap_or(DEFAULT_LANE)
    }
}

/// A partition among its queue's, as people write it: `3` (default lane) or `batch:3`.
/// Orders the default lane first, then lanes by name, then partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Place {
    /// The lane, `None` for the default lane.
    pub lane: Option<String>,
    /// The partition within the lane.
    pub partition: u32,
}

impl Place {
    /// Partition `partition` of the default lane.
    pub fn default_lane(partition: u32) -> Self {
        Place {
            lane: None,
            partition,
        }
    }
}

impl From<u32> for Place {
    fn from(partition: u32) -> Self {
        Place::default_lane(partition)
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.lane {
            None => write!(f, "{}", self.partition),
            Some(lane) => write!(f, "{lane}:{}", self.partition),
        }
    }
}

/// Why a text is not a [`Place`].
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a partition: write a number, or LANE:NUMBER on a lane (batch:0)")]
pub struct PlaceError(String);

/// Whether `name` may name a lane: lower-case letters, digits and `_`, not empty.
pub fn is_lane_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl FromStr for Place {
    type Err = PlaceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || PlaceError(text.to_owned());
        let (lane, number) = match text.split_once(':') {
            Some((lane, number)) if is_lane_name(lane) => (Some(lane), number),
            Some(_) => return Err(bad()),
            None => (None, text),
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(Place {
            lane: lane.filter(|l| *l != DEFAULT_LANE).map(str::to_owned),
            partition: number.parse().map_err(|_| bad())?,
        })
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

    #[test]
    fn a_lane_is_inside_the_hash_tag_and_the_default_lane_keeps_the_old_names() {
        let k = QueueKeys::on_lane("payworker", "create_payment", Some("batch"), 1);
        assert_eq!(k.stream, "payworker:{create_payment@batch:1}");
        assert_eq!(k.dlq, "payworker:{create_payment@batch:1}:dlq");
        assert_eq!(
            QueueKeys::on_lane("p", "q", Some("default"), 0),
            QueueKeys::new("p", "q", 0)
        );
        let all = QueueKeys::of_queue("p", "q", 2, &["interactive", "default", "batch"]);
        let places: Vec<String> = all.iter().map(|k| k.place().to_string()).collect();
        assert_eq!(
            places,
            [
                "0",
                "1",
                "interactive:0",
                "interactive:1",
                "batch:0",
                "batch:1"
            ]
        );
        assert_eq!(all[..2], QueueKeys::all("p", "q", 2)[..]);
    }

    #[test]
    fn a_place_reads_back_as_itself_and_nothing_else_reads_as_one() {
        for text in ["0", "12", "batch:3", "a_1:0"] {
            assert_eq!(text.parse::<Place>().unwrap().to_string(), text);
        }
        assert_eq!(
            "default:2".parse::<Place>().unwrap(),
            Place::default_lane(2)
        );
        for bad in ["", "x", "-1", "Batch:0", "batch:", ":0", "a:b:0", "batch:x"] {
            assert!(bad.parse::<Place>().is_err(), "{bad:?} parsed");
        }
    }
}
