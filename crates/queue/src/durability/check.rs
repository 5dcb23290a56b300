//! The persistence check at start: `CONFIG GET` of the three settings that decide whether an
//! acknowledged write survives, asked of the server (or of every Cluster master).
//!
//! What counts as a problem: no append-only file (`appendonly no`: a crash loses every write
//! since the last RDB snapshot), `appendfsync no` (the kernel decides when writes reach the
//! disk, commonly up to 30 seconds), and any `maxmemory-policy` but `noeviction` (Redis may
//! delete queue entries and payment marks when memory runs short). `appendfsync everysec`
//! (up to a second lost on a crash) and `always` are accepted.

use std::fmt;

use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{RedisError, Value};

use crate::RedisConn;

/// The settings asked for, in order.
const SETTINGS: [&str; 3] = ["appendonly", "appendfsync", "maxmemory-policy"];

/// A setting that makes Redis lose acknowledged writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurabilityProblem {
    /// `appendonly no`: a crash loses every write since the last snapshot.
    NoAppendOnlyFile {
        /// The Cluster node, if the target is a Cluster.
        node: Option<String>,
    },
    /// `appendfsync no`: the kernel decides when the append-only file reaches the disk.
    FsyncLeftToKernel {
        /// The Cluster node, if the target is a Cluster.
        node: Option<String>,
    },
    /// A `maxmemory-policy` that evicts keys: queue entries and payment marks may vanish.
    Evicts {
        /// The Cluster node, if the target is a Cluster.
        node: Option<String>,
        /// The policy in force.
        policy: String,
    },
}

impl fmt::Display for DurabilityProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (node, what) = match self {
            Self::NoAppendOnlyFile { node } => (
                node,
                "appendonly is no: a crash loses every write since the last snapshot".to_owned(),
            ),
            Self::FsyncLeftToKernel { node } => (
                node,
                "appendfsync is no: the kernel decides when writes reach the disk".to_owned(),
            ),
            Self::Evicts { node, policy } => (
                node,
                format!(
                    "maxmemory-policy is {policy}: keys (queue entries, payment marks) may be \
                     evicted; use noeviction"
                ),
            ),
        };
        match node {
            Some(node) => write!(f, "{node}: {what}"),
            None => f.write_str(&what),
        }
    }
}

/// A setting that could not be read, and why (a managed Redis may refuse `CONFIG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unchecked {
    /// The setting, e.g. `appendonly`.
    pub setting: &'static str,
    /// The Cluster node, if the target is a Cluster.
    pub node: Option<String>,
    /// Redis' answer, or why there was none.
    pub reason: String,
}

impl fmt::Display for Unchecked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(node) = &self.node {
            write!(f, "{node}: ")?;
        }
        write!(f, "{} could not be checked: {}", self.setting, self.reason)
    }
}

/// What the check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurabilityReport {
    /// Settings that lose acknowledged writes.
    pub problems: Vec<DurabilityProblem>,
    /// Settings that could not be read.
    pub unchecked: Vec<Unchecked>,
}

/// Redis showed settings that lose acknowledged writes, and `redis.require_durable` is set.
#[derive(Debug, thiserror::Error)]
#[error(
    "redis.require_durable: Redis does not keep acknowledged writes:\n{}",
    list(&.0.problems)
)]
pub struct DurabilityError(pub DurabilityReport);

fn list(problems: &[DurabilityProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    lines.join("\n")
}

impl DurabilityReport {
    /// The report when Redis could not be reached at all: every setting unchecked.
    pub fn unreachable(error: &RedisError) -> Self {
        Self {
            problems: Vec::new(),
            unchecked: SETTINGS
                .into_iter()
                .map(|setting| Unchecked {
                    setting,
                    node: None,
                    reason: format!("Redis could not be reached: {error}"),
                })
                .collect(),
        }
    }

    /// Logs one warning per problem and per setting that could not be checked, or one info
    /// line when everything was checked and is fine.
    pub fn log(&self) {
        for problem in &self.problems {
            tracing::warn!(
                problem = %problem,
                "REDIS MAY LOSE ACKNOWLEDGED WRITES (a payment could be charged twice): {problem}"
            );
        }
        for unchecked in &self.unchecked {
            tracing::warn!(
                setting = unchecked.setting,
                "Redis persistence: {unchecked}"
            );
        }
        if self.problems.is_empty() && self.unchecked.is_empty() {
            tracing::info!("Redis persistence checked: append-only file, fsync, noeviction");
        }
    }

    /// `Err` when a problem was found and `require_durable`; settings that could not be
    /// checked do not refuse a start (a managed Redis may hide them), they are logged.
    ///
    /// # Errors
    ///
    /// [`DurabilityError`] with this report.
    pub fn enforce(self, require_durable: bool) -> Result<Self, DurabilityError> {
        if require_durable && !self.problems.is_empty() {
            Err(DurabilityError(self))
        } else {
            Ok(self)
        }
    }

    /// Adds what one node's settings say; `values` maps each setting to its value or why it
    /// could not be read.
    fn add_node(&mut self, node: Option<String>, values: [Result<String, String>; 3]) {
        for (setting, value) in SETTINGS.into_iter().zip(values) {
            let value = match value {
                Ok(value) => value,
                Err(reason) => {
                    self.unchecked.push(Unchecked {
                        setting,
                        node: node.clone(),
                        reason,
                    });
                    continue;
                }
            };
            let node = node.clone();
            match (setting, value.as_str()) {
                ("appendonly", "no") => self
                    .problems
                    .push(DurabilityProblem::NoAppendOnlyFile { node }),
                ("appendfsync", "no") => {
                    self.problems
                        .push(DurabilityProblem::FsyncLeftToKernel { node });
                }
                ("maxmemory-policy", policy) if policy != "noeviction" => {
                    self.problems.push(DurabilityProblem::Evicts {
                        node,
                        policy: value.clone(),
                    });
                }
                _ => {}
            }
        }
    }
}

/// Reads the persistence settings of the server, or of every Cluster master. Never fails:
/// what cannot be read is reported as [`Unchecked`].
pub async fn check(conn: &mut RedisConn) -> DurabilityReport {
    let mut report = DurabilityReport::default();
    match conn {
        RedisConn::Cluster(cluster) => {
            let mut nodes: Vec<(String, [Result<String, String>; 3])> = Vec::new();
            for (i, setting) in SETTINGS.into_iter().enumerate() {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let reply = cluster.route_command(config_get(setting), routing).await;
                match reply {
                    Ok(Value::Map(per_node)) => {
                        for (node, value) in per_node {
                            let node: String = redis::from_redis_value(node)
                                .unwrap_or_else(|_| "a node".to_owned());
                            let index = match nodes.iter().position(|(n, _)| *n == node) {
                                Some(index) => index,
                                None => {
                                    nodes.push((node, unknown()));
                                    nodes.len() - 1
                                }
                            };
                            nodes[index].1[i] = parse(setting, value);
                        }
                    }
                    Ok(other) => {
                        report.unchecked.push(Unchecked {
                            setting,
                            node: None,
                            reason: format!("unexpected reply {other:?}"),
                        });
                    }
                    Err(error) => report.unchecked.push(Unchecked {
                        setting,
                        node: None,
                        reason: describe(&error),
                    }),
                }
            }
            for (node, values) in nodes {
                report.add_node(Some(node), values);
            }
        }
        conn => {
            let mut values = unknown();
            for (i, setting) in SETTINGS.into_iter().enumerate() {
                values[i] = match config_get(setting).query_async::<Value>(conn).await {
                    Ok(value) => parse(setting, value),
                    Err(error) => Err(describe(&error)),
                };
            }
            report.add_node(None, values);
        }
    }
    report
}

fn config_get(setting: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg(setting);
    cmd
}

fn unknown() -> [Result<String, String>; 3] {
    std::array::from_fn(|_| Err("no answer".to_owned()))
}

/// The value of `setting` in a `CONFIG GET` reply (`[name, value]` in RESP2, a map in RESP3),
/// or why there is none.
fn parse(setting: &str, reply: Value) -> Result<String, String> {
    let pairs: Vec<(String, String)> = match reply {
        Value::ServerError(error) => return Err(describe(&error.into())),
        Value::Map(map) => map
            .into_iter()
            .filter_map(|(k, v)| {
                Some((
                    redis::from_redis_value(k).ok()?,
                    redis::from_redis_value(v).ok()?,
                ))
            })
            .collect(),
        other => {
            let flat: Vec<String> = redis::from_redis_value(other).map_err(|e| e.to_string())?;
            flat.chunks_exact(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect()
        }
    };
    pairs
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(setting))
        .map(|(_, value)| value)
        .ok_or_else(|| "Redis does not show it (CONFIG GET returned nothing)".to_owned())
}

/// A Redis error as an operator reads it (Redis' errors carry no secrets).
fn describe(error: &RedisError) -> String {
    match error.code() {
        Some("NOPERM") => format!("refused by an ACL: {error}"),
        Some(code) if code == "ERR" && error.to_string().contains("unknown command") => {
            format!("CONFIG is disabled on this server: {error}")
        }
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everysec_and_noeviction_are_fine_and_each_problem_is_named() {
        let mut report = DurabilityReport::default();
        let ok = |v: &str| Ok(v.to_owned());
        report.add_node(None, [ok("yes"), ok("everysec"), ok("noeviction")]);
        assert_eq!(report, DurabilityReport::default());
        report.add_node(None, [ok("no"), ok("no"), ok("allkeys-lru")]);
        let shown: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 3);
        assert!(shown[0].starts_with("appendonly is no"));
        assert!(shown[1].starts_with("appendfsync is no"));
        assert!(shown[2].starts_with("maxmemory-policy is allkeys-lru"));
        assert!(report.clone().enforce(false).is_ok());
        let error = report.enforce(true).unwrap_err().to_string();
        assert!(error.starts_with("redis.require_durable: "), "{error}");
    }

    #[test]
    fn a_setting_that_cannot_be_read_is_reported_not_refused() {
        let mut report = DurabilityReport::default();
        report.add_node(
            Some("10.0.0.1:6379".to_owned()),
            [
                Err("refused by an ACL".to_owned()),
                Ok("always".to_owned()),
                Ok("noeviction".to_owned()),
            ],
        );
        assert!(report.problems.is_empty());
        assert_eq!(
            report.unchecked[0].to_string(),
            "10.0.0.1:6379: appendonly could not be checked: refused by an ACL"
        );
        assert!(report.enforce(true).is_ok());
    }

    #[test]
    fn resp2_and_resp3_replies_are_read() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let resp2 = Value::Array(vec![bulk("appendonly"), bulk("yes")]);
        assert_eq!(parse("appendonly", resp2), Ok("yes".to_owned()));
        let resp3 = Value::Map(vec![(bulk("maxmemory-policy"), bulk("noeviction"))]);
        assert_eq!(
            parse("maxmemory-policy", resp3),
            Ok("noeviction".to_owned())
        );
        assert!(parse("appendonly", Value::Array(vec![])).is_err());
    }
}
