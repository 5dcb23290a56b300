//! The documents against the one list: each table of reason codes lists exactly the codes
//! the queue's [`DeadReason::ALL`] and payworker's `dead_reasons::ALL` have, and every code
//! a document names where it says why a job is dead-lettered is one of them. Like the check of `worker.yaml` against the config's doc
//! comments, this keeps the contract from drifting away from what the worker writes.

use std::collections::BTreeSet;

use payworker::jobs::dead_reasons;
use payworker_queue::DeadReason;

const README: &str = include_str!("../../README.md");
const JOBS_README: &str = include_str!("../../jobs/README.md");
const QUEUE_DESIGN: &str = include_str!("../../docs/design/queue.md");
const SCHEMAS: [(&str, &str); 3] = [
    (
        "jobs/create_payment.schema.json",
        include_str!("../../jobs/create_payment.schema.json"),
    ),
    (
        "jobs/process_notification.schema.json",
        include_str!("../../jobs/process_notification.schema.json"),
    ),
    (
        "jobs/result_event.schema.json",
        include_str!("../../jobs/result_event.schema.json"),
    ),
];

/// The phrases after which a document names a reason code: the backticked code that
/// follows, or every backticked code in the parenthesis that follows.
const MARKERS: [&str; 6] = [
    "dead-lettered as ",
    "dead-lettered with reason ",
    "dead-lettered (",
    "a reason (",
    "refused as ",
    "(as ",
];

/// Every code a payworker dead letter may carry: the queue's and payworker's own.
fn all() -> BTreeSet<String> {
    dead_reasons::every_code()
        .map(|r| r.as_str().to_owned())
        .collect()
}

fn is_code(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The backticked tokens of `text`, in order.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The codes in the first column of the table whose header starts `| reason |`.
fn table(doc: &str) -> Option<BTreeSet<String>> {
    let mut lines = doc.lines().skip_while(|l| !l.starts_with("| reason |"));
    lines.next()?;
    lines.next(); // the `| --- |` line
    let codes = lines
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| backticked(row.split('|').nth(1).unwrap_or("")))
        .filter(|t| is_code(t))
        .map(str::to_owned)
        .collect();
    Some(codes)
}

/// The codes a text names after one of the [`MARKERS`].
fn named(text: &str) -> Vec<String> {
    let mut codes = Vec::new();
    for marker in MARKERS {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            let span = if marker.ends_with('(') {
                &rest[..rest.find(')').unwrap_or(rest.len())]
            } else if let Some(quoted) = rest.strip_prefix('`') {
                &rest[..quoted.find('`').map_or(rest.len(), |i| i + 2)]
            } else {
                continue;
            };
            codes.extend(
                backticked(span)
                    .into_iter()
                    .filter(|t| is_code(t))
                    .map(str::to_owned),
            );
        }
    }
    codes
}

#[test]
fn every_document_lists_the_reason_codes_the_worker_writes() {
    let all = all();
    let mut problems = Vec::new();
    for (name, doc) in [
        ("jobs/README.md", JOBS_README),
        ("docs/design/queue.md", QUEUE_DESIGN),
    ] {
        match table(doc) {
            None => problems.push(format!("{name}: no `| reason |` table")),
            Some(listed) => {
                for extra in listed.difference(&all) {
                    problems.push(format!(
                        "{name}: lists `{extra}`, which the worker never writes"
                    ));
                }
                for missing in all.difference(&listed) {
                    problems.push(format!("{name}: leaves out `{missing}`"));
                }
            }
        }
    }
    if !README.contains("jobs/README.md#the-dead-letter-queue") {
        problems.push("README.md: does not link to jobs/README.md's table of reasons".into());
    }
    let mut texts = vec![
        ("README.md", README),
        ("jobs/README.md", JOBS_README),
        ("docs/design/queue.md", QUEUE_DESIGN),
    ];
    texts.extend(SCHEMAS);
    for (name, text) in texts {
        for code in named(text) {
            if dead_reasons::parse(&code).is_none() {
                problems.push(format!(
                    "{name}: names `{code}`, which the worker never writes"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_codes_are_distinct_and_parse_back() {
    assert_eq!(all().len(), dead_reasons::every_code().count());
    for reason in dead_reasons::every_code() {
        assert_eq!(dead_reasons::parse(reason.as_str()), Some(reason));
        assert!(is_code(reason.as_str()), "{reason}");
    }
    for reason in DeadReason::ALL {
        assert_eq!(DeadReason::parse(reason.as_str()), Some(reason));
    }
    for reason in dead_reasons::ALL {
        assert_eq!(DeadReason::parse(reason.as_str()), None, "not the queue's");
    }
    assert_eq!(dead_reasons::parse("unknown_version"), None);
}

#[test]
fn the_scanner_finds_what_a_document_names() {
    let text = "is dead-lettered as `invalid` and a bad entry gets a reason (`not_json`, \
                `schema`) or is dead-lettered (`unknown_version`); `payworker:{q:0}:dlq`";
    assert_eq!(
        named(text),
        ["invalid", "unknown_version", "not_json", "schema"]
    );
    let doc = "x\n| reason | when |\n| --- | --- |\n| `a`, `b` | `c` |\n| `d` | e |\n\nafter";
    assert_eq!(
        table(doc).unwrap(),
        ["a", "b", "d"].map(String::from).into()
    );
}
