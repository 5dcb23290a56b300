//! The `gateway` section: HTTP client tuning, endpoint paths and the merchant accounts.
//!
//! An account's key is the gateway's HMAC and AES key, so it is a [`SecretString`] from the
//! moment it is parsed. It may be given inline (normally through
//! `PAYWORKER_GATEWAY__ACCOUNTS__<NAME>__KEY`) or as `key_file`; loading reads the file and
//! stores the resolved key, which [`AccountSettings::key`] hands out.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use payworker_gateway::Endpoint;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, de};
use url::Url;
use zeroize::Zeroize;

use super::redact;

/// The payment gateway: HTTP client tuning, endpoint paths and merchant accounts.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySettings {
    /// The HTTP client that calls the gateway.
    pub http: HttpSettings,
    /// Endpoint paths, appended to an account's `base_url`.
    pub paths: PathSettings,
    /// HTTP statuses that this gateway is known to send only when it did NOT process a
    /// request. A server-to-server charge answered with one is sent again; any other
    /// failure after the request left leaves the payment `unknown` until the gateway's
    /// notification settles it, because a resend may charge twice. Empty by default: the
    /// gateway documents no such status, and a proxy in front of it may answer 503 after
    /// forwarding the request.
    pub s2s_resend_on_status: Vec<u16>,
    /// The account used when a job names none; unset means the first account by name.
    pub default_account: Option<String>,
    /// Refuse to start when an account's `key_file` is readable by its group or by other
    /// users (chmod 600 it); when false, such a file only gets a warning at start.
    pub require_private_key_files: bool,
    /// Merchant accounts by name. Names are lower case (`[a-z0-9_]`) because environment
    /// variables reach them in lower case. At least one is required.
    pub accounts: BTreeMap<String, AccountSettings>,
}

/// The HTTP client that calls the gateway.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Time allowed to open a connection (TCP and TLS).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, from sending to the last byte of the response.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long an idle pooled connection is kept open.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host; 0 disables pooling.
    pub pool_max_idle_per_host: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
        }
    }
}

/// Endpoint paths, appended to an account's `base_url`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PathSettings {
    /// Create a payment on the gateway's hosted checkout page.
    pub host: String,
    /// Create a payment for the Stripe.js Payment Element.
    pub element: String,
    /// Create a server-to-server payment with encrypted card data. The gateway's document gives
    /// the hosted-page path here too; change it if the gateway says otherwise.
    pub s2s: String,
}

impl Default for PathSettings {
    fn default() -> Self {
        Self {
            host: "/open-api/payment/host".to_owned(),
            element: "/open-api/payment/element".to_owned(),
            s2s: "/open-api/payment/host".to_owned(),
        }
    }
}

/// One merchant account at the gateway.
///
/// Exactly one of `key` and `key_file` must be set. Build one in code with
/// [`AccountSettings::new`]; one loaded by [`super::Settings::load`] has its key resolved.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettings {
    /// The gateway's base URL (http or https); the endpoint paths are appended to it.
    pub base_url: Url,
    /// The merchant account id, sent as the `account-id` header.
    pub account_id: String,
    /// The merchant's bound website, sent as the `site` header.
    pub site: String,
    /// The 32-character signing and encryption key. Never put it in this file: set
    /// `PAYWORKER_GATEWAY__ACCOUNTS__<NAME>__KEY` or use `key_file`; exactly one of the two
    /// is required.
    #[serde(
        default,
        deserialize_with = "deserialize_key",
        serialize_with = "redact::secret"
    )]
    pub key: Option<SecretString>,
    /// A file holding the key (e.g. a mounted secret); one trailing newline is ignored.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The key from `key` or from `key_file`, set by loading.
    #[serde(skip)]
    resolved_key: Option<SecretString>,
    /// Flow control for this account, shared by every worker pod through Redis: unset, no
    /// limit (and no Redis round trip before a request). Set it below the gateway's quota.
    #[serde(default)]
    pub limits: Option<LimitSettings>,
    /// A circuit breaker for this account, shared by every worker pod through Redis: unset,
    /// no breaker (and no Redis round trip for it).
    #[serde(default)]
    pub breaker: Option<BreakerSettings>,
    /// The permission bits of `key_file` when loading read it (Unix only).
    #[serde(skip)]
    key_file_mode: Option<u32>,
}

impl AccountSettings {
    /// An account with an inline key, already resolved (for tests and tools).
    pub fn new(
        base_url: Url,
        account_id: impl Into<String>,
        site: impl Into<String>,
        key: SecretString,
    ) -> Self {
        Self {
            base_url,
            account_id: account_id.into(),
            site: site.into(),
            key: Some(key.clone()),
            key_file: None,
            limits: None,
            breaker: None,
            resolved_key: Some(key),
            key_file_mode: None,
        }
    }

    /// The account's key, whether it came inline or from `key_file`.
    ///
    /// # Panics
    ///
    /// If the key was never resolved, which only happens to an account deserialized by hand
    /// instead of through [`super::Settings::load`] or [`super::Settings::from_figment`].
    pub fn key(&self) -> &SecretString {
        self.resolved_key
            .as_ref()
            .expect("account key not resolved: load settings through Settings::load")
    }

    /// The resolved key, if any (validation looks at it before anyone can call [`Self::key`]).
    pub(crate) fn resolved_key(&self) -> Option<&SecretString> {
        self.resolved_key.as_ref()
    }

    /// Records the key that loading resolved.
    pub(crate) fn set_resolved_key(&mut self, key: SecretString) {
        self.resolved_key = Some(key);
    }

    /// The permission bits of `key_file`, if loading read one and the platform has them.
    pub(crate) fn key_file_mode(&self) -> Option<u32> {
        self.key_file_mode
    }

    /// Records the permission bits of the `key_file` that loading read.
    pub(crate) fn set_key_file_mode(&mut self, mode: Option<u32>) {
        self.key_file_mode = mode;
    }
}

/// An account's limits, enforced together by every worker pod (see `payments::flow`). A
/// job over a limit waits, or goes back to its queue without spending an attempt; it never
/// fails for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Requests per second to the gateway, over all pods and endpoints (a GCRA schedule);
    /// unset, no rate limit.
    pub per_second: Option<u32>,
    /// Requests that may leave at once after a quiet spell (at least 1).
    pub burst: u32,
    /// Requests waiting for the gateway's answer at once, over all pods; unset, no cap.
    pub max_in_flight: Option<u32>,
    /// Limits of one endpoint's requests besides the account's (`host`, `element`, `s2s`):
    /// a request goes when both admit it, checked in the same Redis step.
    pub endpoints: EndpointLimits,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            per_second: None,
            burst: 1,
            max_in_flight: None,
            endpoints: EndpointLimits::default(),
        }
    }
}

impl LimitSettings {
    /// Whether any limit is set, the account's or an endpoint's.
    pub fn limits_anything(&self) -> bool {
        self.per_second.is_some()
            || self.max_in_flight.is_some()
            || self.endpoints.iter().any(|(_, l)| l.limits_anything())
    }
}

/// Per-endpoint limits of an account (`limits.endpoints`); an endpoint left out has only
/// the account's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointLimits {
    /// Hosted checkout requests.
    pub host: Option<EndpointLimitSettings>,
    /// Payment Element requests.
    pub element: Option<EndpointLimitSettings>,
    /// Server-to-server card payments.
    pub s2s: Option<EndpointLimitSettings>,
}

impl EndpointLimits {
    /// The endpoints that have limits of their own.
    pub fn iter(&self) -> impl Iterator<Item = (Endpoint, &EndpointLimitSettings)> {
        [
            (Endpoint::Host, &self.host),
            (Endpoint::Element, &self.element),
            (Endpoint::S2s, &self.s2s),
        ]
        .into_iter()
        .filter_map(|(endpoint, limits)| Some((endpoint, limits.as_ref()?)))
    }
}

/// One endpoint's limits, on top of its account's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointLimitSettings {
    /// This endpoint's requests per second, over all pods (a GCRA schedule); unset, no
    /// rate limit of its own.
    pub per_second: Option<u32>,
    /// Requests that may leave at once after a quiet spell (at least 1).
    pub burst: u32,
    /// This endpoint's requests waiting for the gateway's answer at once, over all pods;
    /// unset, no cap of its own.
    pub max_in_flight: Option<u32>,
}

impl Default for EndpointLimitSettings {
    fn default() -> Self {
        Self {
            per_second: None,
            burst: 1,
            max_in_flight: None,
        }
    }
}

impl EndpointLimitSettings {
    /// Whether it sets a limit.
    pub fn limits_anything(&self) -> bool {
        self.per_second.is_some() || self.max_in_flight.is_some()
    }
}

/// An account's circuit breaker (see `payments::breaker`): after `failure_percent` of at
/// least `min_requests` requests in `window` failed (no connection, no answer or a broken
/// one, a 5xx, a 503 or 408), the account sends nothing for `open_for`, on every pod; its
/// jobs wait in their queue without spending attempts. Then one host checkout request (safe
/// to resend) probes the gateway: an answer closes the breaker, a failure opens it again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// The share of failed requests in the window, in percent (1 to 100), that opens it.
    pub failure_percent: u32,
    /// The fewest requests in the window before it may open (at least 1).
    pub min_requests: u32,
    /// How far back requests count: whole seconds, 1 s to 10 min.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long it stays open before a probe may go (at least 1 s).
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
    /// The amount of the probe's hosted checkout (a decimal; the probe opens an unpaid
    /// checkout session at the gateway, order number `payworker-probe-<time>`).
    pub probe_amount: String,
    /// The probe's currency (ISO 4217, upper case).
    pub probe_currency: String,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_percent: 50,
            min_requests: 20,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(30),
            probe_amount: "1.00".to_owned(),
            probe_currency: "USD".to_owned(),
        }
    }
}

/// Deserializes an optional key as a string only. Serde's default "invalid type" errors quote
/// the value they found, so a key written as a YAML number would be printed; this visitor's
/// errors never contain it.
fn deserialize_key<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretString>, D::Error> {
    Option::<KeyString>::deserialize(deserializer).map(|key| key.map(|KeyString(key)| key))
}

/// A key read as a string, see [`deserialize_key`].
struct KeyString(SecretString);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor).map(KeyString)
    }
}

/// Accepts strings; rejects everything else without quoting it.
struct KeyVisitor;

impl KeyVisitor {
    fn reject<E: de::Error>(self) -> Result<SecretString, E> {
        Err(E::custom(
            "must be a string (quote it in YAML); the value is not shown",
        ))
    }
}

impl<'de> de::Visitor<'de> for KeyVisitor {
    type Value = SecretString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(SecretString::from(v))
    }

    fn visit_string<E: de::Error>(self, mut v: String) -> Result<Self::Value, E> {
        let key = SecretString::from(v.as_str());
        v.zeroize();
        Ok(key)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        self.reject()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.reject()
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
        self.reject()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.reject()
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
        self.reject()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.reject()
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        self.reject()
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.reject()
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.reject()
    }
}

impl AccountSettings {
    /// The account as the gateway protocol sees it: id, site and validated key.
    pub fn credentials(
        &self,
    ) -> Result<payworker_gateway::Credentials, payworker_gateway::KeyError> {
        Ok(payworker_gateway::Credentials {
            account_id: self.account_id.clone(),
            site: self.site.clone(),
            key: payworker_gateway::GatewayKey::new(self.key().clone())?,
        })
    }
}
