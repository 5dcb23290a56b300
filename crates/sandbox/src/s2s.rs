//! S2S charges: decrypt the card, let the test card decide, count the attempt, answer.
//!
//! The decrypted card lives only inside [`charge`] (wiped on drop) and is never logged or
//! stored: the payment keeps its last four digits. Every S2S request with a valid card is a
//! charge attempt, repeated order numbers included: like the real gateway (no idempotency
//! key), the sandbox does not deduplicate, so an order's `charges` shows double charging.

use std::sync::Arc;

use serde::Deserialize;

use super::cards::{self, CardBehaviour};
use super::reply::{Reply, codes};
use super::settings::SandboxAccount;
use super::settle::Settle;
use super::state::{Order, Payment, Shared};
use super::views::SandboxStatus;
use payworker_gateway::domain::CardDetails;
use payworker_gateway::notification::NotifiedStatus;
use payworker_gateway::wire::OrderFields;
use payworker_gateway::{Endpoint, crypto};

#[derive(Deserialize)]
struct CardField {
    #[serde(default)]
    card: Option<String>,
}

/// Reads the card, without echoing any of its content in the error.
fn read_card(account: &SandboxAccount, body: &[u8]) -> Result<CardDetails, Reply> {
    let invalid = |msg: String| Reply::reject(codes::INVALID, msg);
    let field: CardField = serde_json::from_slice(body)
        .map_err(|_| invalid("card must be a string holding the encrypted card".into()))?;
    let encrypted = field
        .card
        .ok_or_else(|| invalid("card is required for a server-to-server payment".into()))?;
    let plaintext = crypto::decrypt(&account.key, &encrypted)
        .map_err(|e| invalid(format!("card cannot be decrypted: {e}")))?;
    // serde's messages can quote values; only the error's category is reported.
    let card: CardDetails = serde_json::from_slice(&plaintext).map_err(|e| {
        invalid(format!(
            "decrypted card is not {{\"number\",\"cvc\",\"exp_month\",\"exp_year\"}} JSON \
             with string values ({:?} error at column {})",
            e.classify(),
            e.column()
        ))
    })?;
    card.validated()
        .map_err(|e| invalid(format!("card is invalid: {e}")))
}

/// One S2S charge attempt.
pub(crate) fn charge(
    shared: &Arc<Shared>,
    account: &SandboxAccount,
    order: &OrderFields,
    body: &[u8],
) -> Reply {
    let (behaviour, last4) = match read_card(account, body) {
        Ok(card) => (cards::behaviour(card.number()), card.last4().to_owned()),
        Err(reply) => return reply,
    };
    let key = (
        account.account_id.clone(),
        order.order_no.as_str().to_owned(),
    );
    let payment_id = {
        let mut store = shared.store();
        let record = store
            .orders
            .entry(key.clone())
            .or_insert_with(|| Order::new(Endpoint::S2s, order));
        record.requests += 1;
        if let Some(msg) = record.conflict(Endpoint::S2s, order) {
            return Reply::reject(codes::ORDER_CONFLICT, msg);
        }
        let payment_id = store.new_payment_id();
        let status = match behaviour {
            CardBehaviour::RequiresAction => SandboxStatus::RequiresAction,
            _ => SandboxStatus::Created,
        };
        let payment = Payment {
            key: key.clone(),
            status,
            last4: Some(last4),
            client_secret: None,
            return_url: order.return_url.clone(),
            callback_url: order.callback_url.clone(),
        };
        store.add_payment(&payment_id, payment);
        store.count_charge(&key);
        payment_id
    };
    let settle = |status, reason| {
        let change = Settle {
            status,
            reason,
            new_attempt: false,
            from: &[],
        };
        // The payment was filed above and payments are never removed.
        let _ = shared.settle(&payment_id, change);
    };
    match behaviour {
        CardBehaviour::Succeeds => {
            settle(NotifiedStatus::Success, "");
            Reply::ok(serde_json::json!({ "status": "succeeded", "payment_id": payment_id }))
        }
        CardBehaviour::Declined(reason) => {
            settle(NotifiedStatus::Fail, reason);
            Reply::reject(codes::DECLINED, reason)
        }
        CardBehaviour::RequiresAction => Reply::ok(serde_json::json!({
            "status": "requires_action",
            "payment_id": payment_id,
            "redirect_to_url": shared.link("3ds", &payment_id),
        })),
    }
}
