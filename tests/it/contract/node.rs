//! The Node examples (`jobs/examples/node/`, node-redis from its `node_modules`): the
//! producer and the card encryption.

use super::producers::{self, Producer};

const NODE: Producer = Producer {
    name: "node",
    program: "node",
    produce: "node/produce.mjs",
    encrypt_card: Some("node/encrypt_card.mjs"),
    check: ("node", &["--version"]),
    needs: "node",
    installed: Some("node/node_modules/redis"),
};

#[tokio::test]
async fn producer_enqueues_jobs() {
    producers::enqueues_jobs(&NODE).await;
}

#[tokio::test]
async fn producer_fails_when_redis_is_unreachable() {
    producers::fails_when_redis_is_unreachable(&NODE).await;
}

#[tokio::test]
async fn card_encryption_example_decrypts_with_the_worker_code() {
    producers::card_encryption_decrypts_with_the_worker_code(&NODE).await;
}
