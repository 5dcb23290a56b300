//! A merchant account as both handlers use it: the `CreatePayment` handler signs its
//! requests with it, the `ProcessNotification` handler verifies the gateway's notifications
//! with it. Built once from `gateway.accounts` (`startup`), the default account first.

use url::Url;

use payworker_gateway::Credentials;

/// One configured merchant account, ready to sign.
#[derive(Debug, Clone)]
pub struct PaymentAccount {
    /// Its name in config.
    pub name: String,
    /// Id, site, key.
    pub creds: Credentials,
    /// The gateway's base URL.
    pub base_url: Url,
}
