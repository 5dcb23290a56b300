//! No page shows a key, a PAN or a CVC: dead letters holding misplaced card data in their
//! detail, errors, payload and unknown fields, and every page the console serves crawled.

use super::{Running, TOKEN};
use crate::cli::KEY;
use crate::support::card_letters::{CVC, PAN, SPACED};
use crate::support::{as_pairs, card_letters, cleanup};

#[tokio::test]
async fn no_console_page_shows_card_data_or_a_key() {
    let mut c = Running::start("console-card", "0.0.0.0", true).await;
    let [(first, one), (second, two)] = card_letters(KEY);
    let one = c.letter(first, &as_pairs(&one)).await;
    let two = c.letter(second, &as_pairs(&two)).await;
    let mut pages = vec![
        "/queues".to_owned(),
        "/letters".to_owned(),
        "/letters?queue=process_notification".to_owned(),
        "/letters?text=card".to_owned(),
        format!("/letters?text={PAN}"),
        "/letters?reason=invalid".to_owned(),
        "/letters/bulk?action=redrive&queue=create_payment&reason=&since=&text=card".to_owned(),
        "/letters/bulk?action=delete&queue=create_payment&reason=&since=&text=".to_owned(),
        "/login".to_owned(),
        "/payments".to_owned(),
        "/tail".to_owned(),
        format!("/payments?order_no={PAN}"),
        "/style.css".to_owned(),
    ];
    for id in [&one, &two] {
        pages.push(format!("/letter?queue=create_payment&id={id}"));
    }
    let mut shown = Vec::new();
    for path in &pages {
        let (status, body) = c.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        shown.push((path.clone(), body));
    }
    // What the actions answer, too: re-driving the redacted letter is refused.
    let (_, view) = c
        .get(&format!("/letter?queue=create_payment&id={one}"))
        .await;
    let csrf = Running::csrf(&view);
    let (status, body) = c
        .post(
            "/letter/redrive",
            &[("queue", "create_payment"), ("id", &one), ("csrf", &csrf)],
            Some(&c.origin()),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    shown.push(("POST /letter/redrive".into(), body));
    assert_eq!(c.queued().await, 0);
    for (path, body) in &shown {
        for secret in [PAN, SPACED, CVC, KEY, TOKEN] {
            assert!(
                !crate::support::shows(body, secret),
                "{path} shows {secret}:\n{body}"
            );
        }
    }
    let letter = &shown.iter().find(|(p, _)| p.contains(&one)).unwrap().1;
    assert!(letter.contains("[REDACTED"), "{letter}");
    // A PAN typed into the search box is not echoed back: it is searched for masked, as
    // the letters hold it.
    let found = &shown.iter().find(|(p, _)| p.ends_with(PAN)).unwrap().1;
    assert!(
        found.contains("value=\"[REDACTED: card number]\""),
        "{found}"
    );
    let log = c.log_text();
    for secret in [PAN, SPACED, KEY, TOKEN] {
        assert!(!log.contains(secret), "the log shows {secret}:\n{log}");
    }
    cleanup(&mut c.conn, &c.prefix).await;
}
