//! The `payworker` binary: parse the command line, load config, start telemetry, dispatch.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = payworker::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(payworker::cli::run(cli))
}
