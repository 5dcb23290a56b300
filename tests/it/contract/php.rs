//! The PHP examples (`jobs/examples/php/`, phpredis): the producer and the card
//! encryption.

use super::producers::{self, Producer};

const PHP: Producer = Producer {
    name: "php",
    program: "php",
    produce: "php/produce.php",
    encrypt_card: Some("php/encrypt_card.php"),
    check: ("php", &["-r", "exit(extension_loaded('redis') ? 0 : 1);"]),
    needs: "php with the phpredis extension (php-redis)",
    installed: None,
};

#[tokio::test]
async fn producer_enqueues_jobs() {
    producers::enqueues_jobs(&PHP).await;
}

#[tokio::test]
async fn producer_fails_when_redis_is_unreachable() {
    producers::fails_when_redis_is_unreachable(&PHP).await;
}

#[tokio::test]
async fn card_encryption_example_decrypts_with_the_worker_code() {
    producers::card_encryption_decrypts_with_the_worker_code(&PHP).await;
}
