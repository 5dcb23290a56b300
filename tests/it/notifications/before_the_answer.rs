//! Notifications that reach the worker before its own answer does: they never reopen a
//! charge that may be on the wire, and whichever attempt of the job ends well brings in
//! those that came before the order.

use std::time::Duration;

use payworker::payments::{orphans, record};
use payworker_queue::QueueKeys;
use payworker_sandbox::{Fault, FaultRule};
use redis::AsyncCommands;

use super::{Options, Product, charge, refund};
use crate::support::eventually;

/// A refund notification for a payment whose S2S request may be on the wire changes no
/// status; it must not clear the send mark either, or the job delivered again charges the
/// card a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_notification_never_reopens_a_charge_that_may_be_on_the_wire() {
    let product = Product::start(Options::silent()).await;
    // A worker claimed the order, marked its request as on the wire, and died.
    let key = record::key(&product.prefix, "main", "RF1");
    let origin = "5-0".to_owned();
    record::claim(
        &mut product.conn().await,
        &key,
        &orphans::key(&product.prefix, "main", "RF1"),
        &[
            ("status", "pending".into()),
            ("version", "1".into()),
            ("owner", origin.clone()),
            ("attempts", "1".into()),
            ("phase", "sending".into()),
            ("send_token", "5-0:1:dead".into()),
            ("account", "main".into()),
            ("order_no", "RF1".into()),
            ("amount", "20.99".into()),
            ("currency", "EUR".into()),
            ("method", "s2s".into()),
        ],
    )
    .await
    .unwrap();
    // The gateway got it: a refund notification comes before any answer.
    let body = refund("pi_rf", "RF1", "5.00", "pending");
    assert_eq!(product.post_signed(&body).await, 200);
    product.event("RF1", "refund.pending").await;

    // The job is delivered again (its worker died before the ack).
    let again = payworker_queue::envelope::RetryEnvelope {
        job: crate::payments::s2s_job("RF1", "4242424242424242").to_string(),
        attempt: 1,
        origin_id: origin,
        first_failed_ms: 0,
        errors: vec![],
    };
    let stream = QueueKeys::new(&product.prefix, "create_payment", 0).stream;
    let _: String = product
        .conn()
        .await
        .xadd(
            stream,
            "*",
            &[("retry", serde_json::to_string(&again).unwrap())],
        )
        .await
        .unwrap();
    product.event("RF1", "payment.unknown").await;
    assert!(
        product
            .sandbox
            .order(crate::payments::ACCOUNT_ID, "RF1")
            .is_none(),
        "the charge was sent again"
    );
    product.stop().await;
}

/// Forwards every connection accepted on `listener` to `to`.
async fn forward(listener: tokio::net::TcpListener, to: std::net::SocketAddr) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// The attempt that created the record failed before it could bring in the notifications
/// that were waiting for the order; a later attempt that ends well brings them in, instead
/// of leaving them until the orphan review at their expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_attempt_adopts_the_notifications_that_came_before_the_order() {
    // The gateway is unreachable at first: the first attempt is never sent.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let product = Product::start(Options {
        gateway_url: Some(format!("http://127.0.0.1:{port}/").parse().unwrap()),
        orphan_expiry: Duration::from_secs(3600),
        ..Options::silent()
    })
    .await;
    let body = charge("pi_late", "LATE-1", "20.99", "success");
    assert_eq!(product.post_signed(&body).await, 200);
    eventually(Duration::from_secs(10), || async {
        let kept: usize = crate::support::redis()
            .await
            .hlen(orphans::key(&product.prefix, "main", "LATE-1"))
            .await
            .unwrap();
        (kept == 1).then_some(())
    })
    .await;
    // The request's answer will be lost: the payment ends `unknown`, with no payment id.
    product
        .sandbox
        .add_fault(FaultRule::times(Fault::Reset, 1).for_order("LATE-1"));
    product
        .push(
            "create_payment",
            &crate::payments::s2s_job("LATE-1", "4242424242424242"),
        )
        .await;
    // The first attempt claims the order, cannot connect, and will retry.
    eventually(Duration::from_secs(10), || async {
        let r = product.record("LATE-1").await;
        (r.get("status") == Some("pending") && r.get("phase").unwrap_or_default().is_empty())
            .then_some(())
    })
    .await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let relay = tokio::spawn(forward(listener, product.sandbox.addr));

    let settled = product.status("LATE-1", "succeeded").await;
    assert_eq!(settled.get("payment_id"), Some("pi_late"));
    relay.abort();
    product.stop().await;
}
