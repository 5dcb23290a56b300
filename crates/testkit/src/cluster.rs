//! A three-master Redis Cluster on loopback ports, created with `redis-cli --cluster create`,
//! for the cluster-safety tests (hash tags, partitions spread over masters), and which node
//! serves a slot ([`owner_of`]).

use std::net::{Ipv4Addr, TcpListener};
use std::process::Stdio;
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;

use super::redis_server::RedisProcess;

/// Masters in the cluster.
const MASTERS: usize = 3;
/// Highest client port: the cluster bus uses port + 10000, which must stay a valid port.
const MAX_PORT: u16 = 55_000;
/// `--cluster-node-timeout`, in milliseconds.
const NODE_TIMEOUT_MS: &str = "2000";
/// Bound on `redis-cli --cluster create` plus the wait for `cluster_state:ok` everywhere.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts on fresh ports, in case another process takes a port we picked.
const START_ATTEMPTS: usize = 3;

/// Three `redis-server --cluster-enabled yes` masters on free loopback ports, each with its own
/// temporary directory, joined by `redis-cli --cluster create … --cluster-replicas 0` and
/// covering all 16384 slots. All nodes are killed on drop.
pub struct RedisCluster {
    ports: Vec<u16>,
    // Field order: processes drop (are killed) before their directories are removed.
    _processes: Vec<RedisProcess>,
    _dirs: Vec<tempfile::TempDir>,
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits (bounded) until every node reports
    /// `cluster_state:ok`, 16384 assigned slots and 3 known nodes.
    ///
    /// # Panics
    ///
    /// If the cluster could not be formed, with the reason.
    pub async fn start() -> Self {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start().await {
                Ok(cluster) => return cluster,
                Err(error) => failures.push(error),
            }
        }
        panic!("could not start a Redis Cluster: {failures:#?}");
    }

    async fn try_start() -> Result<Self, String> {
        let ports = cluster_ports(MASTERS);
        let mut processes = Vec::with_capacity(MASTERS);
        let mut dirs = Vec::with_capacity(MASTERS);
        for &port in &ports {
            let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                NODE_TIMEOUT_MS,
            ];
            processes.push(RedisProcess::spawn(port, dir.path(), &args).await?);
            dirs.push(dir);
        }
        let cluster = Self {
            ports,
            _processes: processes,
            _dirs: dirs,
        };
        let deadline = Instant::now() + FORM_TIMEOUT;
        cluster.create(deadline).await?;
        cluster.wait_until_ok(deadline).await?;
        Ok(cluster)
    }

    /// Runs `redis-cli --cluster create` over the nodes (bounded by `deadline`).
    async fn create(&self, deadline: Instant) -> Result<(), String> {
        let mut command = tokio::process::Command::new("redis-cli");
        command.arg("--cluster").arg("create");
        for port in &self.ports {
            command.arg(format!("127.0.0.1:{port}"));
        }
        command
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout_at(deadline.into(), command.output())
            .await
            .map_err(|_| "redis-cli --cluster create timed out".to_owned())?
            .map_err(|e| format!("spawn redis-cli (is it installed?): {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "redis-cli --cluster create failed with {}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// Polls `CLUSTER INFO` on every node until all agree the cluster is whole.
    async fn wait_until_ok(&self, deadline: Instant) -> Result<(), String> {
        let wants = [
            "cluster_state:ok".to_owned(),
            "cluster_slots_assigned:16384".to_owned(),
            format!("cluster_known_nodes:{MASTERS}"),
        ];
        let mut last = String::new();
        loop {
            let mut all_ok = true;
            for url in self.nodes() {
                let info = cluster_info(&url).await.unwrap_or_else(|e| e);
                let ok = wants
                    .iter()
                    .all(|want| info.lines().any(|line| line.trim() == want));
                if !ok {
                    all_ok = false;
                    last = format!("{url}: {info}");
                    break;
                }
            }
            if all_ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "cluster not ok within {FORM_TIMEOUT:?}; last: {last}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The nodes' URLs, `redis://127.0.0.1:<port>/`, one per master.
    pub fn nodes(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}/"))
            .collect()
    }

    /// A cluster connection (`ClusterClient::new(nodes)`), routed by slot.
    ///
    /// # Panics
    ///
    /// If it cannot connect.
    pub async fn client(&self) -> ClusterConnection {
        ClusterClient::new(self.nodes())
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("connect to the cluster")
    }
}

/// `CLUSTER INFO` of one node, or the error as text.
async fn cluster_info(url: &str) -> Result<String, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

/// `n` distinct client ports of 127.0.0.1, each ≤ [`MAX_PORT`], each free together with its
/// bus port (+10000). All are held while choosing, so they are distinct, then released.
fn cluster_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..1_000 {
        if ports.len() == n {
            return ports;
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if port > MAX_PORT {
            held.push(listener); // hold it so the next bind yields another port
            continue;
        }
        if let Ok(bus) = TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)) {
            held.push(listener);
            held.push(bus);
            ports.push(port);
        } else {
            held.push(listener);
        }
    }
    panic!("found only {} of {n} usable cluster ports", ports.len());
}

/// The node URL serving a slot, from `CLUSTER SLOTS` on any node.
pub fn owner_of(cluster: &RedisCluster, slot: i64) -> String {
    let client = redis::Client::open(cluster.nodes()[0].as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let ranges: Vec<(i64, i64, (String, i64))> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Vec<redis::Value>>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|r| {
            let items: Vec<redis::Value> = redis::from_redis_value(r).unwrap();
            let start: i64 = redis::from_redis_value(items[0].clone()).unwrap();
            let end: i64 = redis::from_redis_value(items[1].clone()).unwrap();
            let node: Vec<redis::Value> = redis::from_redis_value(items[2].clone()).unwrap();
            let host: String = redis::from_redis_value(node[0].clone()).unwrap();
            let port: i64 = redis::from_redis_value(node[1].clone()).unwrap();
            (start, end, (host, port))
        })
        .collect();
    let (_, _, (host, port)) = ranges
        .into_iter()
        .find(|(s, e, _)| (*s..=*e).contains(&slot))
        .unwrap();
    format!("{host}:{port}")
}
