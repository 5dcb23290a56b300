//! What the admin endpoints (and [`super::SandboxHandle`]) report: an order's history and the
//! sandbox's counters, as JSON-friendly values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::quota::QuotaStats;
use payworker_gateway::Endpoint;
use payworker_gateway::notification::{EventType, NotifiedStatus};

/// Where a sandbox payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxStatus {
    /// A checkout session or Element intent exists; nobody has paid yet.
    Created,
    /// An S2S charge waits for 3-D Secure.
    RequiresAction,
    /// Paid.
    Succeeded,
    /// Declined or failed.
    Failed,
}

/// An order as the sandbox saw it (`GET /admin/orders/{account_id}/{order_no}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// The merchant account.
    pub account_id: String,
    /// The merchant's order number.
    pub order_no: String,
    /// The latest payment's id.
    pub payment_id: String,
    /// Every payment id created for the order, oldest first (S2S creates one per charge).
    pub payment_ids: Vec<String>,
    /// How the order was created.
    pub method: Endpoint,
    /// The latest payment's status.
    pub status: SandboxStatus,
    /// The amount as the order was created with it, e.g. `"20.99"`.
    pub amount: String,
    /// ISO 4217.
    pub currency: String,
    /// Create requests for this order that passed authentication and validation.
    pub requests: u64,
    /// Charge attempts: S2S requests with a valid card, checkout pay/fail, admin charges.
    pub charges: u64,
    /// Charges that succeeded (money moved).
    pub successful_charges: u64,
    /// The latest card's last four digits (S2S only).
    pub last4: Option<String>,
    /// Every notification copy scheduled for the order, in order of scheduling.
    pub notifications: Vec<NotificationView>,
}

/// One notification copy and its deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationView {
    /// The payment it is about.
    pub payment_id: String,
    /// Charge or refund.
    pub event_type: EventType,
    /// The status it carries.
    pub status: NotifiedStatus,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// The HTTP status of the latest attempt; `None` before the first answer or when the
    /// latest attempt got none (refused connection, timeout).
    pub last_http_status: Option<u16>,
    /// The HTTP status of every attempt, `None` where there was no answer.
    pub http_statuses: Vec<Option<u16>>,
}

/// The sandbox's counters (`GET /admin/stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Create requests received, faulted ones included.
    pub requests_total: u64,
    /// Create requests by HTTP path.
    pub requests_by_path: BTreeMap<String, u64>,
    /// Create requests by endpoint (`host`, `element`, `s2s`; a body with a card on a path
    /// S2S shares with Host is `s2s`), faulted and throttled ones included: how a test sees
    /// that no charge left while it should not.
    #[serde(default)]
    pub requests_by_endpoint: BTreeMap<String, u64>,
    /// Create requests answered with an envelope whose code is not 200.
    pub rejected_total: u64,
    /// Charge attempts, every order together.
    pub charges_total: u64,
    /// Host and Element sessions opened (a repeated order that returns the existing session
    /// does not count).
    pub sessions_total: u64,
    /// Notification delivery attempts.
    pub deliveries_total: u64,
    /// The W3C `traceparent` header of the latest create requests that carried one (the
    /// last [`Stats::TRACEPARENTS_KEPT`], oldest first): how a test sees that the worker
    /// propagates its trace to the gateway.
    #[serde(default)]
    pub traceparents: Vec<String>,
    /// What each account's quota saw, by account id (accounts with a quota only).
    #[serde(default)]
    pub quota: BTreeMap<String, QuotaStats>,
}

impl Stats {
    /// How many `traceparent` headers the stats keep.
    pub const TRACEPARENTS_KEPT: usize = 256;
}
