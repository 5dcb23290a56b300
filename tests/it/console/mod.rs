//! `payworker console` as an operator reaches it: the binary started on its own port and
//! key prefix against real Redis, driven over real HTTP. Auth and CSRF (`auth`), the
//! dead-letter pages and actions (`letters`), and no card data on any page (`card_data`);
//! the payments page (`payments`); the queues page's throughput (`queues`).

mod auth;
mod browser;
mod card_data;
mod letters;
mod payments;
mod queues;

use std::io::Write as _;
use std::time::Duration;

use redis::AsyncCommands;

use crate::cli::KEY;
use crate::support::{eventually, payworker_command, redis, unique_prefix};
use payworker_testkit::{ChildGuard, free_port};

/// The token tests log in with.
pub const TOKEN: &str = "console-test-token-0123456789";

/// One console process, its Redis prefix and an HTTP client.
pub struct Running {
    pub prefix: String,
    pub base: String,
    pub http: reqwest::Client,
    pub conn: redis::aio::MultiplexedConnection,
    _config: tempfile::NamedTempFile,
    _child: ChildGuard,
    pub log: tempfile::NamedTempFile,
}

/// The worker's `worker.yaml`, for the console to read, with the results stream under
/// `prefix` (a resolve publishes its event there).
fn config(prefix: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let yaml = include_str!("../../../worker.yaml")
        .replace("\"payworker:{results}\"", &format!("{:?}", results(prefix)));
    file.write_all(yaml.as_bytes()).unwrap();
    file
}

/// The results stream of a test's prefix.
pub fn results(prefix: &str) -> String {
    format!("{prefix}:{{results}}")
}

/// `payworker console` with `env` on top of the test's prefix and the gateway key.
pub fn command(
    config: &std::path::Path,
    prefix: &str,
    env: &[(&str, &str)],
) -> std::process::Command {
    let mut cmd = payworker_command();
    cmd.arg("--config")
        .arg(config)
        .arg("console")
        .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)
        .env("PAYWORKER_REDIS__KEY_PREFIX", prefix)
        .env("PAYWORKER_CONSOLE__OPERATOR", "alice")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null());
    cmd
}

impl Running {
    /// A console bound to `bind_ip` (on a free port), with the token when `token`, reached
    /// through loopback.
    pub async fn start(name: &str, bind_ip: &str, token: bool) -> Self {
        Running::start_on(unique_prefix(name), bind_ip, token, &[]).await
    }

    /// As [`Running::start`], on a given `prefix` (another part's, e.g. a running worker's)
    /// with `extra` environment on top (e.g. that worker's gateway account).
    pub async fn start_on(
        prefix: String,
        bind_ip: &str,
        token: bool,
        extra: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let listen = format!("{bind_ip}:{port}");
        let config = config(&prefix);
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut env = vec![("PAYWORKER_CONSOLE__LISTEN", listen.as_str())];
        if token {
            env.push(("PAYWORKER_CONSOLE__TOKEN", TOKEN));
        }
        env.extend_from_slice(extra);
        let out = log.reopen().unwrap();
        let err = out.try_clone().unwrap();
        let child = command(config.path(), &prefix, &env)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let login = format!("{base}/login");
        eventually(Duration::from_secs(30), || {
            let http = http.clone();
            let login = login.clone();
            async move { http.get(&login).send().await.ok().map(|_| ()) }
        })
        .await;
        Running {
            prefix,
            base,

            http,
            conn: redis().await,
            _config: config,
            _child: ChildGuard(child),
            log,
        }
    }

    pub fn keys(&self, queue: &str, partition: u32) -> payworker_queue::QueueKeys {
        payworker_queue::QueueKeys::new(&self.prefix, queue, partition)
    }

    /// Writes a dead letter on `create_payment` partition 0 with `fields`; its id.
    pub async fn letter(&mut self, id: &str, fields: &[(&str, &str)]) -> String {
        let dlq = self.keys("create_payment", 0).dlq;
        let _: String = self.conn.xadd(&dlq, id, fields).await.unwrap();
        format!("0/{id}")
    }

    pub async fn dlq_len(&self) -> u64 {
        self.conn
            .clone()
            .xlen(self.keys("create_payment", 0).dlq)
            .await
            .unwrap()
    }

    pub async fn queued(&self) -> u64 {
        self.conn
            .clone()
            .xlen(self.keys("create_payment", 0).stream)
            .await
            .unwrap()
    }

    /// `GET path` with the token; status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `POST path` with the token, the form `pairs`, and `origin` (`None`: no Origin).
    pub async fn post(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().copied())
            .finish();
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// This console's own origin.
    pub fn origin(&self) -> String {
        self.base.clone()
    }

    /// The CSRF token from a page's form.
    pub fn csrf(page: &str) -> String {
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 19;
        page[at..at + 64].to_owned()
    }

    /// The console's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }
}

/// A job for order `order`.
pub fn job(order: &str) -> String {
    format!(
        r#"{{"version":1,"method":"host","order_no":"{order}","amount":"1.00","currency":"EUR","return_url":"https://x.example/done"}}"#
    )
}
