//! `payworker-bench`: payworker's benchmarks, kept out of the production binary. Each
//! prints its figures as CSV lines, one per run (README "Benchmarks" says how to read
//! them and what was measured on which machine).
//!
//! - `queue`: the job queue alone with no-op jobs on a real Redis (jobs/s, Redis CPU per
//!   job), draining a pre-filled queue or producing while consuming.
//! - `payments`: payments end to end against the sandbox gateway (job, worker, signed HTTP
//!   on loopback, record, event).
//! - `ingress`: the webhook ingress, signed notifications verified and enqueued per second.
//!
//! `measure` holds what they all read besides their own figures (Redis CPU, memory).
//!
//! The Criterion benchmarks of the pure protocol live with it, in
//! `crates/gateway/benches/` (`cargo bench -p payworker-gateway`).

mod ingress;
mod measure;
mod payments;
mod queue;

use clap::{Parser, Subcommand};

use payworker::config::TelemetrySettings;

/// mimalloc, as in the production binary, so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// payworker's benchmarks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure the job queue with no-op jobs on a real Redis (jobs/s, Redis CPU per job).
    Queue(queue::BenchArgs),
    /// Measure payments end to end (job, worker, signed HTTP to the sandbox, record, event).
    Payments(payments::BenchPaymentsArgs),
    /// Measure the webhook ingress: signed notifications verified and enqueued per second.
    Ingress(ingress::BenchIngressArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let level = match cli.command {
            Command::Queue(_) => "warn",
            Command::Payments(_) | Command::Ingress(_) => "error",
        };
        let _telemetry = payworker::telemetry::init(&TelemetrySettings {
            log_level: level.into(),
            ..Default::default()
        });
        match cli.command {
            Command::Queue(args) => queue::run(args).await,
            Command::Payments(args) => payments::run(args).await,
            Command::Ingress(args) => ingress::run(args).await,
        }
    })
}
