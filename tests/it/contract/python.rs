//! The Python examples (`jobs/examples/python/`, redis-py and cryptography): the producer
//! and the card encryption.

use super::producers::{self, Producer};

const PYTHON: Producer = Producer {
    name: "python",
    program: "python3",
    produce: "python/produce.py",
    encrypt_card: Some("python/encrypt_card.py"),
    check: (
        "python3",
        &[
            "-c",
            "import redis, cryptography.hazmat.primitives.ciphers.aead",
        ],
    ),
    needs: "python3 with redis-py and cryptography",
    installed: None,
};

#[tokio::test]
async fn producer_enqueues_jobs() {
    producers::enqueues_jobs(&PYTHON).await;
}

#[tokio::test]
async fn producer_fails_when_redis_is_unreachable() {
    producers::fails_when_redis_is_unreachable(&PYTHON).await;
}

#[tokio::test]
async fn card_encryption_example_decrypts_with_the_worker_code() {
    producers::card_encryption_decrypts_with_the_worker_code(&PYTHON).await;
}
