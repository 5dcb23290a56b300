//! The shell example (`jobs/examples/shell/`, redis-cli): the producer (the shell has no
//! card-encryption example).

use super::producers::{self, Producer};

const SHELL: Producer = Producer {
    name: "shell",
    program: "bash",
    produce: "shell/produce.sh",
    encrypt_card: None,
    check: ("redis-cli", &["--version"]),
    needs: "redis-cli (redis-tools)",
    installed: None,
};

#[tokio::test]
async fn producer_enqueues_jobs() {
    producers::enqueues_jobs(&SHELL).await;
}

#[tokio::test]
async fn producer_fails_when_redis_is_unreachable() {
    producers::fails_when_redis_is_unreachable(&SHELL).await;
}
