//! A worker killed with SIGKILL mid-job: another worker reclaims the job after the lease
//! and runs it, once.

use std::time::{Duration, Instant};

use super::*;
use payworker_testkit::queue_job::deliver_to_dead_workers;
use payworker_testkit::{eventually, unique_prefix};

#[tokio::test]
async fn a_job_held_by_a_killed_worker_is_run_once_by_another_within_the_lease() {
    let prefix = unique_prefix("crash");
    let mut config = config(&prefix);
    config.lease = Duration::from_secs(2);
    config.reclaim_interval = Duration::from_millis(200);
    let keys = keys(&config);
    let mut conn = redis().await;
    enqueue(
        &mut conn,
        &keys.stream,
        [r#"{"version":1,"n":1,"sleep_ms":4000}"#.to_owned()],
    )
    .await;

    // A real worker process (the benchmark's worker mode) takes the job and works on it.
    let mut child = worker_process(&prefix, 16, Duration::from_secs(2));
    eventually(Duration::from_secs(20), || async {
        (pending(&mut redis().await, &keys.stream).await == 1).then_some(())
    })
    .await;
    child.0.kill().unwrap(); // SIGKILL: no shutdown, no ack, no hand-back
    child.0.wait().unwrap();
    let killed = Instant::now();

    let runs = Runs::default();
    let worker = start(config, &runs);
    eventually(Duration::from_secs(20), || async {
        (runs.total() == 1).then_some(())
    })
    .await;
    let reclaimed_after = killed.elapsed();
    worker.stop().await;

    let by_dead: Option<i64> = conn.get(format!("{prefix}:done:1")).await.unwrap();
    assert_eq!(by_dead, None, "the killed worker never finished");
    assert_eq!(
        runs.0.lock().unwrap().get(&1),
        Some(&1),
        "run exactly once by the live worker"
    );
    // Reclaimed once the lease (2 s) ran out, plus the job's own 4 s of work.
    assert!(
        reclaimed_after < Duration::from_secs(12),
        "took {reclaimed_after:?}"
    );
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test]
async fn a_long_job_keeps_its_lease_and_is_not_stolen_while_alive() {
    let prefix = unique_prefix("longjob");
    let mut config = config(&prefix);
    config.lease = Duration::from_millis(600);
    config.reclaim_interval = Duration::from_millis(100);
    let keys = keys(&config);
    let mut conn = redis().await;
    enqueue(
        &mut conn,
        &keys.stream,
        [r#"{"version":1,"n":1,"sleep_ms":3000}"#.to_owned()],
    )
    .await;

    // Two live workers that both reclaim idle entries every 100 ms; the job runs five
    // leases long. Renewal keeps it with the worker that runs it.
    let runs = Runs::default();
    let a = start(config.clone(), &runs);
    let b = start(config, &runs);
    eventually(Duration::from_secs(20), || async {
        (runs.total() >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await; // room for a wrongful second run
    a.stop().await;
    b.stop().await;
    assert_eq!(
        runs.0.lock().unwrap().get(&1),
        Some(&1),
        "the job ran more than once"
    );
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    cleanup(&mut conn, &prefix).await;
}

#[tokio::test]
async fn a_job_that_keeps_killing_its_workers_is_dead_lettered_as_poison() {
    let prefix = unique_prefix("poisonloop");
    let mut config = config(&prefix);
    config.lease = Duration::from_millis(300);
    config.reclaim_interval = Duration::from_millis(100);
    config.max_deliveries = 3;
    let keys = keys(&config);
    let mut conn = redis().await;
    enqueue(&mut conn, &keys.stream, [ping(1), ping(2)]).await;
    // Job 1 was handed to workers that died holding it, four times (what XAUTOCLAIM by
    // successive workers leaves behind); job 2 is ordinary.
    deliver_to_dead_workers(&mut conn, &keys, 4).await;
    tokio::time::sleep(Duration::from_millis(400)).await; // idle past the lease

    let runs = Runs::default();
    let worker = start(config, &runs);
    let letters = eventually(Duration::from_secs(10), || async {
        let letters = dlq(&mut redis().await, &keys).await;
        (letters.len() == 1 && runs.total() == 1).then_some(letters)
    })
    .await;
    worker.stop().await;
    assert_eq!(letters[0]["reason"], "poison");
    assert_eq!(letters[0]["deliveries"], "5");
    assert!(letters[0]["detail"].contains("delivered 5 times without finishing (limit 3)"));
    assert_eq!(
        runs.0.lock().unwrap().get(&1),
        None,
        "the poison job was not run again"
    );
    assert_eq!(runs.0.lock().unwrap().get(&2), Some(&1));
    assert_eq!(pending(&mut conn, &keys.stream).await, 0);
    cleanup(&mut conn, &prefix).await;
}
