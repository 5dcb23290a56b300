//! The sandbox gateway that the process-level runs (the soak, the stress test, the trace
//! test) charge against: it knows the test account and sends signed notifications to the
//! ingress, or none when the test plays the gateway's notifications itself.

use std::time::Duration;

use payworker_gateway::GatewayKey;
use payworker_sandbox::{
    self as sandbox, FaultRule, NotifySettings, SandboxAccount, SandboxHandle, SandboxSettings,
};
use tokio_util::sync::CancellationToken;

use crate::payments::{ACCOUNT_ID, KEY};

/// A sandbox on a loopback port that knows the test account, notifies `notify_delay` after
/// each charge, applies `default_fault` to every request no rule names, and stops with
/// `cancel`.
pub async fn notifying_sandbox(
    notify_delay: Duration,
    default_fault: Option<FaultRule>,
    cancel: CancellationToken,
) -> SandboxHandle {
    let notify = NotifySettings {
        delay: notify_delay,
        ..NotifySettings::default()
    };
    sandbox_with(notify, default_fault, cancel).await
}

/// A sandbox that knows the test account and answers, but sends no notification: the test
/// plays the gateway's notifications itself.
pub async fn silent_sandbox(cancel: CancellationToken) -> SandboxHandle {
    let notify = NotifySettings {
        max_deliveries: 0,
        ..NotifySettings::default()
    };
    sandbox_with(notify, None, cancel).await
}

async fn sandbox_with(
    notify: NotifySettings,
    default_fault: Option<FaultRule>,
    cancel: CancellationToken,
) -> SandboxHandle {
    sandbox::spawn(
        SandboxSettings {
            notify,
            default_fault,
            ..SandboxSettings::with_account(SandboxAccount {
                account_id: ACCOUNT_ID.into(),
                key: GatewayKey::from_text(KEY).unwrap(),
                site: None,
            })
        },
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        cancel,
    )
    .await
    .unwrap()
}
