//! The command line: one binary, one subcommand per role, so every deployment runs the same
//! image with different `args`.
//!
//! `main` parses [`Cli`] and calls [`run`]; each subcommand lives in its own file and goes
//! through the same composition roots the tests use.

mod bench;
mod bench_ingress;
mod bench_payments;
mod demo;
mod demo_parts;
mod dlq;
mod ops;
mod sandbox;
mod tools;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// payworker: a Redis-backed job-queue payment worker.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Config file (default: $PAYWORKER_CONFIG, else ./worker.yaml when present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// All in one on embedded defaults: sandbox gateway and sample payments of each method.
    Demo(demo::DemoArgs),
    /// Run the sandbox gateway, a local stand-in for the real one.
    Sandbox(sandbox::SandboxArgs),
    /// Run the worker: consume CreatePayment and ProcessNotification jobs until SIGTERM.
    Worker,
    /// Run the webhook ingress: verify the gateway's notifications and enqueue them.
    Ingress,
    /// Push a job onto a queue (one XADD), from a file or stdin.
    Enqueue(ops::EnqueueArgs),
    /// Payment records.
    #[command(subcommand)]
    Payment(ops::PaymentCommand),
    /// Inspect and re-drive the dead-letter queues.
    Dlq(dlq::DlqArgs),
    /// Print the effective configuration, secrets redacted, after validating it.
    CheckConfig,
    /// Measure payments end to end (job, worker, signed HTTP to the sandbox, record, event).
    BenchPayments(bench_payments::BenchPaymentsArgs),
    /// Measure the webhook ingress: signed notifications verified and enqueued per second.
    BenchIngress(bench_ingress::BenchIngressArgs),
    /// Measure the job queue with no-op jobs on a real Redis (jobs/s, Redis CPU per job).
    BenchQueue(bench::BenchArgs),
    /// Encrypt a card (JSON on stdin) with an account's key, as an S2S job carries it.
    EncryptCard(tools::EncryptCardArgs),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Sandbox(args) => {
            let settings = load(cli.config.as_deref())?;
            let _telemetry = crate::telemetry::init(&settings.telemetry);
            sandbox::run(&settings, args).await
        }
        Command::BenchPayments(args) => {
            let _telemetry = crate::telemetry::init(&crate::config::TelemetrySettings {
                log_level: "error".into(),
                ..Default::default()
            });
            bench_payments::run(args).await
        }
        Command::BenchIngress(args) => {
            let _telemetry = crate::telemetry::init(&crate::config::TelemetrySettings {
                log_level: "error".into(),
                ..Default::default()
            });
            bench_ingress::run(args).await
        }
        Command::BenchQueue(args) => {
            let _telemetry = crate::telemetry::init(&crate::config::TelemetrySettings {
                log_level: "warn".into(),
                ..Default::default()
            });
            bench::run(args).await
        }
        Command::Worker => {
            let settings = load(cli.config.as_deref())?;
            let _telemetry = crate::telemetry::init(&settings.telemetry);
            crate::startup::run_worker(&settings, shutdown_token()).await
        }
        Command::Ingress => {
            let settings = load(cli.config.as_deref())?;
            let _telemetry = crate::telemetry::init(&settings.telemetry);
            crate::startup::run_ingress(&settings, shutdown_token()).await
        }
        Command::Enqueue(args) => ops::enqueue(&load(cli.config.as_deref())?, args).await,
        Command::Payment(command) => ops::payment(&load(cli.config.as_deref())?, command).await,
        Command::Dlq(args) => dlq::run(&load(cli.config.as_deref())?, args).await,
        Command::CheckConfig => tools::check_config(&load(cli.config.as_deref())?),
        Command::EncryptCard(args) => tools::encrypt_card(&load(cli.config.as_deref())?, args),
    }
}

fn load(path: Option<&std::path::Path>) -> anyhow::Result<Settings> {
    Settings::load(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))
}

/// A token cancelled on Ctrl-C or SIGTERM: the one signal every loop watches.
pub fn shutdown_token() -> CancellationToken {
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        trigger.cancel();
    });
    cancel
}
