//! What a sandbox is started with: merchant accounts, endpoint paths, public URL,
//! notification behaviour, a default fault and quotas. Checked once, in [`super::spawn`].

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use url::Url;

use super::faults::FaultRule;
use super::quota::Quota;
use payworker_gateway::GatewayKey;

/// Everything [`super::spawn`] needs besides a listener and a cancellation token.
#[derive(Debug, Clone, Default)]
pub struct SandboxSettings {
    /// The merchant accounts the sandbox knows; requests from any other account are refused.
    pub accounts: Vec<SandboxAccount>,
    /// Where the three create endpoints live.
    pub paths: SandboxPaths,
    /// Base of `checkout_link` and `redirect_to_url`; `None` means `http://{bound address}`.
    pub public_url: Option<Url>,
    /// How notifications are delivered.
    pub notify: NotifySettings,
    /// A fault applied to every matching create request after the rules added at run time
    /// (e.g. a fixed latency for benchmarks). `DELETE /admin/faults` leaves it in place.
    pub default_fault: Option<FaultRule>,
    /// Quotas by account id (none by default): past them a create request is answered 429
    /// with `Retry-After` (see [`Quota`]). `PUT /admin/quotas/{account_id}` sets one at run
    /// time.
    pub quotas: BTreeMap<String, Quota>,
}

impl SandboxSettings {
    /// Settings with one account and every other value at its default.
    pub fn with_account(account: SandboxAccount) -> Self {
        SandboxSettings {
            accounts: vec![account],
            ..SandboxSettings::default()
        }
    }

    /// Refuses settings the router cannot serve unambiguously.
    pub(crate) fn validate(&self) -> io::Result<()> {
        let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if self.accounts.is_empty() {
            return invalid("sandbox: at least one account is required".into());
        }
        for (name, path) in self.paths.named() {
            if !path.starts_with('/') || path.contains(['{', '}', '*']) {
                return invalid(format!(
                    "sandbox: paths.{name} must be a plain path starting with /"
                ));
            }
            if ["/admin", "/checkout", "/3ds"]
                .iter()
                .any(|p| path.starts_with(p))
            {
                return invalid(format!(
                    "sandbox: paths.{name} collides with the sandbox's own pages"
                ));
            }
        }
        if self.paths.host == self.paths.element {
            return invalid("sandbox: paths.host and paths.element must differ".into());
        }
        Ok(())
    }
}

/// A merchant account the sandbox accepts.
#[derive(Debug, Clone)]
pub struct SandboxAccount {
    /// The `account-id` header value.
    pub account_id: String,
    /// The key requests are signed with and cards encrypted with; notifications are signed
    /// with it too.
    pub key: GatewayKey,
    /// The bound website the `site` header must name; `None` accepts any site.
    pub site: Option<String>,
}

/// The create endpoints' paths. S2S shares the Host path by default (as the gateway documents
/// it, `docs/gateway.md#creating-a-payment`); on a shared path a body with a `card` field is an
/// S2S request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPaths {
    /// Hosted checkout.
    pub host: String,
    /// Stripe.js Payment Element.
    pub element: String,
    /// Server to server.
    pub s2s: String,
}

impl Default for SandboxPaths {
    fn default() -> Self {
        SandboxPaths {
            host: "/open-api/payment/host".into(),
            element: "/open-api/payment/element".into(),
            s2s: "/open-api/payment/host".into(),
        }
    }
}

impl SandboxPaths {
    fn named(&self) -> [(&'static str, &str); 3] {
        [
            ("host", &self.host),
            ("element", &self.element),
            ("s2s", &self.s2s),
        ]
    }
}

/// How the sandbox delivers signed notifications to an order's `callback_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySettings {
    /// Wait between the event (payment settled, refund triggered) and the first delivery.
    pub delay: Duration,
    /// Extra copies of every notification, each delivered until accepted.
    pub duplicates: u32,
    /// After a final charge status (`success` or `fail`), also deliver a `pending` one for
    /// the same payment, as a late, out-of-order notification.
    pub out_of_order: bool,
    /// Wait before the first redelivery after a refused or failed delivery; it doubles after
    /// every attempt, capped at 10 s (or at this value, if larger).
    pub redeliver_every: Duration,
    /// Delivery attempts per copy, first one included. 0 records the notification and never
    /// sends it (a lost notification).
    pub max_deliveries: u32,
    /// `true`: every delivery carries a fresh `oncestr` and `timestamp` (and so a new
    /// signature). `false`: every delivery of a notification has identical bytes and headers.
    pub resign_redeliveries: bool,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            delay: Duration::from_millis(50),
            duplicates: 0,
            out_of_order: false,
            redeliver_every: Duration::from_millis(500),
            max_deliveries: 50,
            resign_redeliveries: true,
        }
    }
}
