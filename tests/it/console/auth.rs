//! Who gets in: a non-loopback bind needs the token (or does not start), the login form's
//! cookie, and the CSRF checks on every change.

use super::{Running, TOKEN, command, config, job};
use crate::support::{cleanup, unique_prefix};

#[test]
fn console_does_not_start_on_a_non_loopback_address_without_a_token() {
    let prefix = unique_prefix("console-notoken");
    let config = config(&prefix);
    let out = command(
        config.path(),
        &prefix,
        &[("PAYWORKER_CONSOLE__LISTEN", "0.0.0.0:0")],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("PAYWORKER_CONSOLE__TOKEN"), "{stderr}");
}

#[tokio::test]
async fn console_bound_to_every_address_refuses_requests_without_the_token() {
    let mut c = Running::start("console-auth", "0.0.0.0", true).await;
    for path in [
        "/queues",
        "/letters",
        "/letter?queue=create_payment&id=0/1-0",
        "/",
    ] {
        let r = c
            .http
            .get(format!("{}{path}", c.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("name=\"token\""),
            "{path}: no login form: {body}"
        );
        let wrong = c
            .http
            .get(format!("{}{path}", c.base))
            .bearer_auth("not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401, "{path}");
    }
    let (status, body) = c.get("/queues").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("signed in as alice"), "{body}");

    // The login form: a wrong token is refused, the right one sets an HttpOnly,
    // SameSite=Strict cookie that opens the pages.
    let login = |token: &str| {
        c.http
            .post(format!("{}/login", c.base))
            .header("origin", c.origin())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    assert_eq!(login("nope").await.unwrap().status().as_u16(), 401);
    let ok = login(TOKEN).await.unwrap();
    assert_eq!(ok.status().as_u16(), 303);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let r = c
        .http
        .get(format!("{}/queues", c.base))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A POST without the token changes nothing.
    let id = c
        .letter(
            "1700000000000-0",
            &[("job", &job("A-1")), ("reason", "gave_up")],
        )
        .await;
    let r = c
        .http
        .post(format!("{}/letter/delete", c.base))
        .header("origin", c.origin())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("queue=create_payment&id={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(c.dlq_len().await, 1);
    cleanup(&mut c.conn, &c.prefix).await;
}

#[tokio::test]
async fn every_change_needs_the_pages_csrf_token_and_its_own_origin() {
    let mut c = Running::start("console-csrf", "0.0.0.0", true).await;
    let id = c
        .letter(
            "1700000000000-0",
            &[("job", &job("C-1")), ("reason", "gave_up")],
        )
        .await;
    let (status, page) = c
        .get(&format!("/letter?queue=create_payment&id={id}"))
        .await;
    assert_eq!(status, 200, "{page}");
    let csrf = Running::csrf(&page);
    let origin = c.origin();
    let pairs = |csrf: &str| {
        vec![
            ("queue".to_owned(), "create_payment".to_owned()),
            ("id".to_owned(), id.clone()),
            ("csrf".to_owned(), csrf.to_owned()),
        ]
    };
    let post = |pairs: Vec<(String, String)>, origin: Option<String>| {
        let pairs: Vec<(String, String)> = pairs;
        let c = &c;
        async move {
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            c.post("/letter/delete", &refs, origin.as_deref()).await
        }
    };
    // No CSRF field, a wrong one, a foreign Origin, no Origin at all: 403, nothing deleted.
    let no_field = vec![
        ("queue".to_owned(), "create_payment".to_owned()),
        ("id".to_owned(), id.clone()),
    ];
    assert_eq!(post(no_field, Some(origin.clone())).await.0, 403);
    assert_eq!(
        post(pairs(&"0".repeat(64)), Some(origin.clone())).await.0,
        403
    );
    assert_eq!(
        post(pairs(&csrf), Some("http://evil.example".into()))
            .await
            .0,
        403
    );
    assert_eq!(post(pairs(&csrf), None).await.0, 403);
    let foreign_port = format!("http://127.0.0.1:{}", 1);
    assert_eq!(post(pairs(&csrf), Some(foreign_port)).await.0, 403);
    assert_eq!(c.dlq_len().await, 1, "a refused request deleted the letter");
    // The page's token from the page's origin: deleted, and logged with who.
    let (status, body) = post(pairs(&csrf), Some(origin)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(c.dlq_len().await, 0);
    let log = c.log_text();
    assert!(
        log.lines().any(|l| l.contains("console action")
            && l.contains("alice")
            && l.contains("delete")
            && l.contains(&id)),
        "no log line says alice deleted {id}:\n{log}"
    );
    cleanup(&mut c.conn, &c.prefix).await;
}
