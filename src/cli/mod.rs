//! The command line: one binary, one subcommand per role, so every deployment runs the same
//! image with different `args`.
//!
//! `main` parses [`Cli`] and calls [`run`]; each subcommand lives in its own file and goes
//! through the same composition roots the tests use. Benchmarks are not here: they are the
//! `payworker-bench` binary (`crates/bench`). Signals: SIGTERM and Ctrl-C shut down
//! ([`shutdown_token`]); SIGTSTP quiets the worker (`crate::quiet`).
//!
//! - `args`: arguments several subcommands share (`--config`, a queue's name).
//! - `demo`: all in one on embedded defaults; `sandbox`: the sandbox gateway as a server.
//! - `ops`: `enqueue`, `payment show`, `payment resolve` (the events from
//!   `payments::timeline`); `dlq`: `dlq stats|list|show|redrive|delete`.
//! - `tools`: `check-config`, `encrypt-card`.

mod args;
mod demo;
mod dlq;
mod ops;
mod sandbox;
mod tools;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

pub use args::{ConfigArg, QueueName};

use crate::config::{ConfigError, Settings};

/// payworker: a Redis-backed job-queue payment worker.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Config file (default: $PAYWORKER_CONFIG, else ./worker.yaml when present), for the
    /// commands that read one (all but `demo`); it may also follow the
    /// subcommand.
    #[arg(long, value_name = "FILE")]
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
    Sandbox(Configured<sandbox::SandboxArgs>),
    /// Run the worker: consume CreatePayment and ProcessNotification jobs until SIGTERM
    /// (SIGTSTP quiets it: no new jobs, running ones finish; `POST /resume` resumes).
    Worker(ConfigArg),
    /// Run the webhook ingress: verify the gateway's notifications and enqueue them.
    Ingress(ConfigArg),
    /// Push a job onto a queue (one XADD), from a file or stdin.
    #[command(after_help = "Examples:
  payworker enqueue job.json
  payworker enqueue --queue process_notification notification.json
  producer | payworker enqueue - --config /etc/payworker/worker.yaml")]
    Enqueue(Configured<ops::EnqueueArgs>),
    /// Payment records.
    Payment(PaymentArgs),
    /// Find, read, re-drive and delete dead letters (options may come before or after the
    /// action).
    #[command(after_help = "Examples:
  payworker dlq stats
  payworker dlq list --queue process_notification --reason gave_up --since 2h
  payworker dlq show 0/1764500000000-0
  payworker dlq redrive 0/1764500000000-0
  payworker dlq redrive --all --grep ORDER-1001 --dry-run
  payworker dlq delete --all --reason invalid --yes --json")]
    Dlq(dlq::DlqArgs),
    /// Run the operator's web console (`console.listen`, loopback by default; anywhere else
    /// it needs `PAYWORKER_CONSOLE__TOKEN` or `console.token_file`).
    Console(ConfigArg),
    /// Print the effective configuration, secrets redacted, after validating it.
    #[command(after_help = "Examples:
  payworker check-config --config /etc/payworker/worker.yaml
  PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY_FILE=/run/secrets/main.key payworker check-config")]
    CheckConfig(ConfigArg),
    /// Encrypt a card (JSON on stdin) with an account's key, as an S2S job carries it.
    EncryptCard(Configured<tools::EncryptCardArgs>),
}

/// A subcommand's own arguments with `--config`, for the commands that read the
/// configuration.
#[derive(Debug, Args)]
pub struct Configured<T: Args> {
    /// The configuration file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// The subcommand's own arguments.
    #[command(flatten)]
    pub args: T,
}

/// Arguments of `payment`.
#[derive(Debug, Args)]
pub struct PaymentArgs {
    /// The configuration file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// What to do.
    #[command(subcommand)]
    pub command: ops::PaymentCommand,
}

impl Command {
    /// The `--config` given after this subcommand, or `None` for a command that does not
    /// read the configuration.
    fn config(&self) -> Option<&ConfigArg> {
        match self {
            Self::Demo(_) => None,
            Self::Worker(config)
            | Self::Ingress(config)
            | Self::Console(config)
            | Self::CheckConfig(config) => Some(config),
            Self::Sandbox(c) => Some(&c.config),
            Self::Enqueue(c) => Some(&c.config),
            Self::EncryptCard(c) => Some(&c.config),
            Self::Payment(p) => Some(&p.config),
            Self::Dlq(d) => Some(&d.config),
        }
    }

    /// The subcommand's name, as typed.
    fn name(&self) -> &'static str {
        match self {
            Self::Demo(_) => "demo",
            Self::Sandbox(_) => "sandbox",
            Self::Worker(_) => "worker",
            Self::Ingress(_) => "ingress",
            Self::Console(_) => "console",
            Self::Enqueue(_) => "enqueue",
            Self::Payment(_) => "payment",
            Self::Dlq(_) => "dlq",
            Self::CheckConfig(_) => "check-config",
            Self::EncryptCard(_) => "encrypt-card",
        }
    }
}

/// The configuration file named on the command line, before or after the subcommand.
///
/// # Errors
///
/// If one is named for a command that does not read it (the user would believe it
/// applied), or two different ones are named.
fn config_path(cli: &Cli) -> anyhow::Result<Option<PathBuf>> {
    let after = cli.command.config().map(|c| c.config.clone());
    match (cli.config.clone(), after) {
        (Some(_), None) => anyhow::bail!(
            "`{}` does not read a configuration file; drop --config",
            cli.command.name()
        ),
        (Some(before), Some(Some(after))) if before != after => anyhow::bail!(
            "--config is given twice ({} and {}); give it once",
            before.display(),
            after.display()
        ),
        (before, after) => Ok(before.or(after.flatten())),
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let path = config_path(&cli)?;
    let load = || load(path.as_deref());
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Sandbox(c) => {
            let settings = load()?;
            let _telemetry = crate::telemetry::init(&settings.telemetry);
            sandbox::run(&settings, c.args).await
        }
        Command::Worker(_) => {
            let settings = load()?;
            let _telemetry = crate::telemetry::init(&settings.telemetry);
            let quiet = crate::quiet::on_sigtstp().context("installing the SIGTSTP handler")?;
            crate::startup::run_worker(&settings, shutdown_token(), quiet).await
        }
        Command::Ingress(_) => {
            let settings = load()?;
            let _telemetry = crate::telemetry::init(&settings.telemetry);
            crate::startup::run_ingress(&settings, shutdown_token()).await
        }
        Command::Console(_) => {
            // Every action logs who did what: the console's audit trail.
            let settings = load()?;
            let _telemetry = crate::telemetry::init(&settings.telemetry);
            crate::console::run(&settings, shutdown_token()).await
        }
        Command::Enqueue(c) => ops::enqueue(&load()?, c.args).await,
        Command::Payment(p) => ops::payment(&load()?, p.command).await,
        Command::Dlq(args) => {
            // Re-drives and deletes log what they did, for the audit trail.
            let settings = load()?;
            let _telemetry = crate::telemetry::init(&settings.telemetry);
            dlq::run(&settings, args).await
        }
        Command::CheckConfig(_) => tools::check_config(&load()?),
        Command::EncryptCard(c) => tools::encrypt_card(&load()?, c.args),
    }
}

/// Loads the configuration; an error reads `invalid configuration:` once, then one problem
/// a line.
fn load(path: Option<&std::path::Path>) -> anyhow::Result<Settings> {
    Settings::load(path).map_err(|e| match e {
        ConfigError::Load(_) | ConfigError::Invalid(_) => anyhow::anyhow!("{e}"),
        other => anyhow::anyhow!("invalid configuration:\n  {other}"),
    })
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
