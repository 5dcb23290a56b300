//! A `redis-server` that one test owns, reachable only with TLS, a client certificate and a
//! password, as a managed Redis in production is. Its CA, server and client certificates
//! are made with the `openssl` command line in the server's temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::redis_server::RedisProcess;
use crate::free_port;

/// Start attempts on fresh ports, in case another process takes a port we picked.
const START_ATTEMPTS: usize = 5;

/// A TLS `redis-server` with `requirepass`, on free loopback ports. Killed on drop.
pub struct TlsRedisServer {
    tls_port: u16,
    password: String,
    // Field order: the process drops (is killed) before its directory is removed.
    _process: RedisProcess,
    dir: tempfile::TempDir,
}

impl TlsRedisServer {
    /// Makes the certificates and starts the server, requiring `password` and a client
    /// certificate signed by the test CA.
    ///
    /// # Panics
    ///
    /// If `openssl` fails or no server could be started.
    pub async fn start(password: &str) -> Self {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("tempdir for redis-server");
            make_certificates(dir.path());
            let (port, tls_port) = (free_port(), free_port());
            let file = |name: &str| dir.path().join(name).display().to_string();
            let args = [
                "--tls-port".to_owned(),
                tls_port.to_string(),
                "--tls-cert-file".to_owned(),
                file("server.crt"),
                "--tls-key-file".to_owned(),
                file("server.key"),
                "--tls-ca-cert-file".to_owned(),
                file("ca.crt"),
                "--tls-auth-clients".to_owned(),
                "yes".to_owned(),
                "--requirepass".to_owned(),
                password.to_owned(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // The plain port stays open for the start probe, which accepts NOAUTH as alive.
            match RedisProcess::spawn(port, dir.path(), &args).await {
                Ok(process) => {
                    return Self {
                        tls_port,
                        password: password.to_owned(),
                        _process: process,
                        dir,
                    };
                }
                Err(error) => failures.push(error),
            }
        }
        panic!("could not start a TLS redis-server: {failures:#?}");
    }

    /// `rediss://127.0.0.1:<tls port>/`, without the password.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.tls_port)
    }

    /// The password the server requires.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A file of this server's directory: `ca.crt`, `client.crt`, `client.key`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Writes `ca.crt`, `server.crt`/`server.key` (for 127.0.0.1 and localhost) and
/// `client.crt`/`client.key`, all P-256, into `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run openssl (is it installed?)");
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=payworker test CA",
            ][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt"],
        ]
        .concat(),
    );
    for (name, extensions) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("basicConstraints=CA:FALSE\n{extensions}"),
        )
        .expect("write an extensions file");
        let subject = format!("/CN=payworker test {name}");
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        openssl(
            &[
                &["req", "-subj", &subject][..],
                &ec,
                &["-keyout", &key, "-out", &csr],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
    }
}
