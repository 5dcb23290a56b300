//! The queues page measures what the workers finish: runs that left a job stream between
//! the console's samples, per second over the last minute.

use std::time::Duration;

use redis::AsyncCommands;

use super::Running;
use crate::support::{cleanup, eventually};

#[tokio::test]
async fn the_queues_page_shows_runs_finished_per_second_from_its_own_samples() {
    // Twenty jobs wait before the console starts; it samples the stream at once.
    let prefix = crate::support::unique_prefix("console-rate");
    let stream = payworker_queue::QueueKeys::new(&prefix, "create_payment", 0).stream;
    let mut conn = crate::support::redis().await;
    let mut ids: Vec<String> = Vec::new();
    for n in 0..20 {
        ids.push(
            conn.xadd(&stream, "*", &[("job", format!("{{\"n\":{n}}}"))])
                .await
                .unwrap(),
        );
    }
    let mut c = Running::start_on(prefix.clone(), "127.0.0.1", false, &[]).await;
    let (status, page) = c.get("/queues").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("finished (1 min, 5 min)"), "{page}");
    assert!(
        page.contains("measuring"),
        "no rate from one sample: {page}"
    );

    // Ten of them finish (a finished run's entry is deleted) before the next sample.
    let _: i64 = conn.xdel(&stream, &ids[..10]).await.unwrap();
    let rate = eventually(Duration::from_secs(20), || async {
        let (_, page) = c.get("/queues").await;
        let cell = page
            .split("<td class=\"rate\">")
            .nth(1)?
            .split("</td>")
            .next()?;
        (!cell.contains("measuring") && !cell.starts_with("0.0/s")).then(|| cell.to_owned())
    })
    .await;
    // Ten runs over the minute sampled so far: one interval of five seconds, or a few on a
    // loaded machine.
    let per_second: f64 = rate.split("/s").next().unwrap().parse().unwrap();
    assert!((0.5..=2.0).contains(&per_second), "{rate}");
    cleanup(&mut c.conn, &c.prefix).await;
}
