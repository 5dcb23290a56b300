//! The `payworker` binary: parse the command line, load config, start telemetry, dispatch.

use clap::Parser;

/// mimalloc: the worker allocates many small, short-lived buffers per job from two or more
/// threads; glibc malloc spent about a third of the queue benchmark's time there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = payworker::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(payworker::cli::run(cli))
}
