//! `payworker sandbox`: the sandbox gateway as a long-running server.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;

use crate::config::Settings;
use payworker_sandbox::{self as sandbox, SandboxAccount, SandboxSettings};

/// Arguments of `sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// Base URL the sandbox puts into checkout and 3-D Secure links (default: its own address).
    #[arg(long)]
    pub public_url: Option<url::Url>,
}

/// Serves the sandbox for every account in the config until Ctrl-C or SIGTERM.
pub async fn run(settings: &Settings, args: SandboxArgs) -> anyhow::Result<()> {
    let accounts = settings
        .gateway
        .accounts
        .values()
        .map(|account| {
            let creds = account.credentials()?;
            Ok(SandboxAccount {
                account_id: creds.account_id,
                key: creds.key,
                site: Some(creds.site),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sandbox_settings = SandboxSettings {
        accounts,
        paths: sandbox::SandboxPaths {
            host: settings.gateway.paths.host.clone(),
            element: settings.gateway.paths.element.clone(),
            s2s: settings.gateway.paths.s2s.clone(),
        },
        public_url: args.public_url,
        ..SandboxSettings::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let cancel = super::shutdown_token();
    let handle = sandbox::spawn(sandbox_settings, listener, cancel).await?;
    tracing::info!(url = %handle.base_url, "sandbox gateway listening");
    handle.stopped().await;
    Ok(())
}
