//! `payworker dlq` as an operator or a script runs it, against real Redis: every command and
//! flag, the `--json` documents checked against the shapes the README documents, paging,
//! filters, dry runs, `--yes`, a settled payment's letter left alone, concurrent re-drives,
//! and no card data in anything shown. Its `Console` (one test's deployment) serves
//! `payment`'s tests too.

use std::io::Write as _;
use std::process::Output;

use redis::AsyncCommands;
use serde_json::Value;

use super::{KEY, payworker};
use crate::support::{cleanup, redis, unique_prefix};

/// One test's deployment: its key prefix, results stream, config file, and Redis.
pub(super) struct Console {
    pub(super) prefix: String,
    pub(super) results: String,
    config: tempfile::NamedTempFile,
    partitions: u32,
    pub(super) conn: redis::aio::MultiplexedConnection,
}

impl Console {
    pub(super) async fn new(name: &str, partitions: u32) -> Self {
        let prefix = unique_prefix(name);
        let results = format!("{prefix}:{{results}}");
        let mut config = tempfile::NamedTempFile::new().unwrap();
        let yaml = include_str!("../../../worker.yaml")
            .replace("\"payworker:{results}\"", &format!("{results:?}"));
        config.write_all(yaml.as_bytes()).unwrap();
        Console {
            prefix,
            results,
            config,
            partitions,
            conn: redis().await,
        }
    }

    fn keys(&self, partition: u32) -> payworker_queue::QueueKeys {
        payworker_queue::QueueKeys::new(&self.prefix, "create_payment", partition)
    }

    /// `payworker --config FILE ARGS`, with this test's prefix and partitions.
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["--config", self.config.path().to_str().unwrap()];
        all.extend_from_slice(args);
        let partitions = self.partitions.to_string();
        payworker(
            &all,
            &[
                ("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY),
                ("PAYWORKER_REDIS__KEY_PREFIX", &self.prefix),
                ("PAYWORKER_QUEUES__CREATE_PAYMENT__PARTITIONS", &partitions),
            ],
            "",
        )
    }

    /// Runs a command that must succeed; its standard output.
    pub(super) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a `--json` command that must succeed; its document.
    pub(super) fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
    }

    /// Adds a dead letter at stream id `id` of `partition`.
    async fn letter(&mut self, partition: u32, id: &str, fields: &[(&str, &str)]) -> String {
        let dlq = self.keys(partition).dlq;
        let _: String = self.conn.xadd(&dlq, id, fields).await.unwrap();
        format!("{partition}/{id}")
    }

    async fn dlq_len(&mut self) -> u64 {
        let mut n = 0;
        for p in 0..self.partitions {
            n += self.conn.xlen::<_, u64>(self.keys(p).dlq).await.unwrap();
        }
        n
    }

    async fn queued(&mut self) -> u64 {
        let mut n = 0;
        for p in 0..self.partitions {
            n += self.conn.xlen::<_, u64>(self.keys(p).stream).await.unwrap();
        }
        n
    }
}

/// A job for order `order`.
fn job(order: &str) -> String {
    format!(
        r#"{{"version":1,"method":"host","order_no":"{order}","amount":"1.00","currency":"EUR","return_url":"https://x.example/done"}}"#
    )
}

fn now_ms() -> u64 {
    payworker_queue::now_ms()
}

/// The documented shape of a letter in `--json` output.
fn assert_letter_shape(letter: &Value) {
    let o = letter.as_object().unwrap_or_else(|| panic!("{letter}"));
    let kind = |name: &str, ok: fn(&Value) -> bool| {
        let v = o
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {letter}"));
        assert!(ok(v), "{name} has the wrong type in {letter}");
    };
    let nullable_u64 = |v: &Value| v.is_null() || v.is_u64();
    let nullable_str = |v: &Value| v.is_null() || v.is_string();
    kind("id", Value::is_string);
    kind("queue", Value::is_string);
    kind("partition", Value::is_u64);
    kind("reason", Value::is_string);
    kind("detail", Value::is_string);
    kind("errors", Value::is_array);
    kind("attempts", nullable_u64);
    kind("deliveries", nullable_u64);
    kind("first_failed_ms", nullable_u64);
    kind("last_failed_ms", nullable_u64);
    kind("dead_ms", Value::is_u64);
    kind("worker", nullable_str);
    kind("origin_id", nullable_str);
    kind("entry_id", nullable_str);
    kind("payload", nullable_str);
    kind("redacted", Value::is_boolean);
    kind("redrivable", Value::is_boolean);
    kind("other", Value::is_object);
    assert_eq!(o.len(), 18, "exactly the documented keys: {letter}");
    for e in o["errors"].as_array().unwrap() {
        assert!(e["attempt"].is_u64() && e["at_ms"].is_u64(), "{e}");
        assert!(e["worker"].is_string() && e["error"].is_string(), "{e}");
    }
    let id = o["id"].as_str().unwrap();
    assert!(
        id.starts_with(&format!("{}/", o["partition"])),
        "{id} is PARTITION/ID"
    );
}

/// The documented shape of a re-drive's or delete's `--json` output.
fn assert_action_shape(doc: &Value, action: &str) {
    assert_eq!(doc["action"], action, "{doc}");
    assert!(doc["dry_run"].is_boolean(), "{doc}");
    for count in ["matched", "redriven", "deleted", "left", "refused", "gone"] {
        assert!(doc["tally"][count].is_u64(), "tally.{count}: {doc}");
    }
    for row in doc["results"].as_array().unwrap() {
        assert!(row["id"].is_string(), "{row}");
        let outcome = row["outcome"].as_str().unwrap();
        match outcome {
            "redriven" => assert!(row["new_entry"].is_string(), "{row}"),
            "left" | "refused" => assert!(row["why"].is_string(), "{row}"),
            "deleted" | "gone" => {}
            other => panic!("unknown outcome {other}: {row}"),
        }
    }
}

/// Letter ids in a `list --json` page.
fn ids(page: &Value) -> Vec<String> {
    page["letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn dlq_list_pages_every_letter_once_across_partitions_and_filters_by_reason_since_and_grep() {
    let mut c = Console::new("dlqcli-list", 3).await;
    let old = now_ms() - 3 * 3600 * 1000;
    let recent = now_ms() - 10 * 60 * 1000;
    let mut all = Vec::new();
    for p in 0..3 {
        for i in 0..7u64 {
            let (at, reason) = if i < 3 {
                (old + i, "invalid")
            } else {
                (recent + i, "gave_up")
            };
            let detail = format!("letter {p}-{i}: gateway said Timeout-{}", i % 2);
            let order = format!("ORD-{p}{i}");
            let id = c
                .letter(
                    p,
                    &format!("{at}-0"),
                    &[
                        ("job", &job(&order)),
                        ("reason", reason),
                        ("detail", &detail),
                    ],
                )
                .await;
            all.push(id);
        }
    }

    // Pages of 4, newest first, every letter once, the cursor carried over.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec!["dlq", "list", "--json", "--limit", "4"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let page = c.json(&args);
        assert_eq!(page["queue"], "create_payment");
        for letter in page["letters"].as_array().unwrap() {
            assert_letter_shape(letter);
        }
        seen.extend(ids(&page));
        match &page["next_cursor"] {
            Value::String(next) => cursor = Some(next.clone()),
            Value::Null => break,
            other => panic!("next_cursor is {other}"),
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "a letter shown twice: {seen:?}");
    all.sort();
    assert_eq!(sorted, all, "every letter once");
    let times: Vec<u64> = seen
        .iter()
        .map(|id| id.split(['/', '-']).nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {seen:?}"
    );

    let invalid = c.json(&[
        "dlq", "list", "--json", "--reason", "invalid", "--limit", "100",
    ]);
    assert_eq!(ids(&invalid).len(), 9);
    assert!(
        invalid["letters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["reason"] == "invalid")
    );
    let either = c.json(&[
        "dlq", "list", "--json", "--reason", "invalid", "--reason", "gave_up",
    ]);
    assert_eq!(ids(&either).len(), 20, "the default page is 20");
    assert!(either["next_cursor"].is_string());

    let since = c.json(&["dlq", "list", "--json", "--since", "1h", "--limit", "100"]);
    assert_eq!(ids(&since).len(), 12);
    assert!(
        since["letters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["reason"] == "gave_up")
    );
    let cut = chrono::DateTime::from_timestamp_millis(i64::try_from(old + 2).unwrap())
        .unwrap()
        .to_rfc3339();
    let since_time = c.json(&["dlq", "list", "--json", "--since", &cut, "--until", "1h"]);
    assert_eq!(
        ids(&since_time).len(),
        3,
        "the third old letter of each partition"
    );

    let grep = c.json(&[
        "dlq",
        "list",
        "--json",
        "--grep",
        "timeout-1",
        "--since",
        "1h",
    ]);
    assert_eq!(
        ids(&grep).len(),
        6,
        "letters 3 and 5 of each partition: {grep}"
    );
    let by_order = c.json(&["dlq", "list", "--json", "--grep", "ord-14"]);
    assert_eq!(
        ids(&by_order),
        vec![format!("1/{}-0", recent + 4)],
        "{by_order}"
    );

    let text = c.ok(&["dlq", "list", "--limit", "2", "--reason", "gave_up"]);
    assert!(
        text.contains("reason: gave_up") && text.contains("more: --cursor "),
        "{text}"
    );
    let bad = c.run(&["dlq", "list", "--cursor", "nonsense"]);
    assert!(!bad.status.success());
    let bad = c.run(&["dlq", "list", "--since", "yesterday-ish"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("RFC 3339"));
    cleanup(&mut c.conn, &c.prefix).await;
}

#[tokio::test]
async fn dlq_stats_and_show_print_their_documented_json() {
    let mut c = Console::new("dlqcli-show", 2).await;
    let errors = r#"[{"attempt":1,"at_ms":1700000000000,"worker":"w-1","error":"gateway code 500"},{"attempt":2,"at_ms":1700000060000,"worker":"w-2","error":"gateway code 503"}]"#;
    let id = c
        .letter(
            1,
            "1700000120000-0",
            &[
                ("job", &job("SHOW-1")),
                ("reason", "exhausted"),
                ("detail", "gave up after 2 attempts"),
                ("attempts", "2"),
                ("deliveries", "1"),
                ("errors", errors),
                ("first_failed_ms", "1700000000000"),
                ("last_failed_ms", "1700000060000"),
                ("dead_ms", "1700000120000"),
                ("worker", "w-2"),
                ("queue", "create_payment"),
                ("partition", "1"),
                ("origin_id", "1699999999999-0"),
                ("entry_id", "1700000060001-0"),
            ],
        )
        .await;
    c.letter(0, "1700000000000-0", &[("reason", "no_job_field")])
        .await;

    let stats = c.json(&["dlq", "stats", "--json"]);
    assert_eq!(stats["queue"], "create_payment");
    assert_eq!(stats["total"], 2);
    let parts = stats["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    for (p, row) in parts.iter().enumerate() {
        assert_eq!(row["partition"], p);
        assert_eq!(row["stream"], c.keys(u32::try_from(p).unwrap()).dlq);
        assert_eq!(row["letters"], 1);
    }
    assert!(
        c.ok(&["dlq", "stats"])
            .contains(&format!("{}\t1", c.keys(1).dlq))
    );

    let shown = c.json(&["dlq", "show", &id, "--json"]);
    let letter = &shown["letter"];
    assert_letter_shape(letter);
    assert_eq!(letter["id"], id);
    assert_eq!(letter["reason"], "exhausted");
    assert_eq!(letter["attempts"], 2);
    assert_eq!(letter["errors"][1]["error"], "gateway code 503");
    assert_eq!(letter["origin_id"], "1699999999999-0");
    assert_eq!(letter["payload"], job("SHOW-1"));
    assert_eq!(letter["redrivable"], true);
    assert_eq!(letter["redacted"], false);
    let bare = c.json(&["dlq", "--json", "show", "0/1700000000000-0"]);
    assert_letter_shape(&bare["letter"]);
    assert!(bare["letter"]["payload"].is_null() && bare["letter"]["attempts"].is_null());
    assert_eq!(bare["letter"]["redrivable"], false);

    let text = c.ok(&["dlq", "show", &id]);
    for line in [
        "reason: exhausted",
        "#2 2023-11-14T22:14:20.000Z w-2: gateway code 503",
        "origin: 1699999999999-0",
        "redrivable: yes",
        "SHOW-1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let missing = c.run(&["dlq", "show", "0/1-0"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no dead letter 0/1-0"));
    let malformed = c.run(&["dlq", "show", "1700000000000-0"]);
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("PARTITION/ID"));
    cleanup(&mut c.conn, &c.prefix).await;
}

#[tokio::test]
async fn dlq_redrive_and_delete_by_id_or_filter_with_dry_run_and_yes() {
    let mut c = Console::new("dlqcli-act", 2).await;
    let mut gave_up = Vec::new();
    for i in 0..6u32 {
        let p = i % 2;
        let reason = if i < 4 { "gave_up" } else { "invalid" };
        let id = c
            .letter(
                p,
                &format!("{}-0", 1_700_000_000_000u64 + u64::from(i)),
                &[
                    ("job", &job(&format!("ACT-{i}"))),
                    ("reason", reason),
                    ("detail", "x"),
                ],
            )
            .await;
        if i < 4 {
            gave_up.push(id);
        }
    }

    // Dry runs count and change nothing.
    let dry = c.json(&[
        "dlq",
        "redrive",
        "--all",
        "--reason",
        "gave_up",
        "--dry-run",
        "--json",
    ]);
    assert_action_shape(&dry, "redrive");
    assert_eq!(
        (dry["dry_run"].as_bool(), dry["tally"]["matched"].as_u64()),
        (Some(true), Some(4))
    );
    let dry_text = c.ok(&["dlq", "delete", "--all", "--dry-run"]);
    assert!(
        dry_text.contains("6 dead letter(s) match") && dry_text.contains("nothing changed"),
        "{dry_text}"
    );
    let dry_id = c.json(&["dlq", "redrive", &gave_up[0], "--dry-run", "--json"]);
    assert_eq!(dry_id["tally"]["matched"], 1);
    assert_eq!((c.dlq_len().await, c.queued().await), (6, 0));

    // Delete without --yes refuses and deletes nothing.
    let refused = c.run(&["dlq", "delete", "--all"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("6 dead letter(s) match") && said.contains("--yes"),
        "{said}"
    );
    assert!(!c.run(&["dlq", "delete", &gave_up[0]]).status.success());
    assert_eq!(c.dlq_len().await, 6);
    // Filters go with --all only; ids and --all do not mix.
    assert!(
        !c.run(&["dlq", "redrive", &gave_up[0], "--reason", "x"])
            .status
            .success()
    );
    assert!(
        !c.run(&["dlq", "redrive", &gave_up[0], "--all"])
            .status
            .success()
    );
    assert!(!c.run(&["dlq", "redrive"]).status.success());

    // One by id, then the rest of a filter.
    let logged = c.run(&["dlq", "redrive", &gave_up[0], "--json"]);
    let log = String::from_utf8_lossy(&logged.stderr);
    assert!(
        log.contains("dead letter re-driven") && log.contains(&gave_up[0]),
        "one line says what was done: {log}"
    );
    let one: Value = serde_json::from_slice(&logged.stdout).unwrap();
    assert_action_shape(&one, "redrive");
    assert_eq!(one["results"][0]["outcome"], "redriven");
    assert_eq!(one["results"][0]["id"], gave_up[0]);
    let again = c.run(&["dlq", "redrive", &gave_up[0]]);
    assert!(!again.status.success(), "a letter re-driven twice");
    assert!(String::from_utf8_lossy(&again.stderr).contains("no such dead letter"));
    let bulk = c.run(&["dlq", "redrive", "--all", "--reason", "gave_up", "--json"]);
    let log = String::from_utf8_lossy(&bulk.stderr);
    assert!(
        log.contains("dead letters acted on in bulk") && log.contains("redriven=3"),
        "{log}"
    );
    assert!(
        !log.contains('\r'),
        "no progress when standard error is not a terminal: {log}"
    );
    let rest: Value = serde_json::from_slice(&bulk.stdout).unwrap();
    assert_action_shape(&rest, "redrive");
    assert_eq!(rest["tally"]["redriven"], 3);
    assert_eq!((c.dlq_len().await, c.queued().await), (2, 4));

    let deleted = c.json(&[
        "dlq", "delete", "--all", "--grep", "act-5", "--yes", "--json",
    ]);
    assert_action_shape(&deleted, "delete");
    assert_eq!(deleted["tally"]["deleted"], 1);
    let one = c.run(&["dlq", "delete", "0/1700000000004-0", "--yes"]);
    let text = String::from_utf8_lossy(&one.stdout);
    assert!(text.contains("0/1700000000004-0: deleted"), "{text}");
    let log = String::from_utf8_lossy(&one.stderr);
    assert!(
        log.contains("dead letter deleted") && log.contains("0/1700000000004-0"),
        "{log}"
    );
    assert_eq!((c.dlq_len().await, c.queued().await), (0, 4));
    cleanup(&mut c.conn, &c.prefix).await;
}

/// A `create_payment` letter whose payment already succeeded, failed or was rejected is
/// left where it is, with a message saying so; one whose payment is still open (or never
/// began) is re-driven.
#[tokio::test]
async fn redriving_a_letter_whose_payment_already_settled_leaves_it() {
    use payworker::payments::record;
    let mut c = Console::new("dlqcli-settled", 1).await;
    for (order, status) in [
        ("S-1", "succeeded"),
        ("S-2", "failed"),
        ("S-3", "rejected"),
        ("P-1", "pending"),
    ] {
        let key = record::key(&c.prefix, "main", order);
        let fields = [
            ("status", status),
            ("version", "3"),
            ("account", "main"),
            ("order_no", order),
        ];
        let _: () = c.conn.hset_multiple(&key, &fields).await.unwrap();
    }
    let mut ids = Vec::new();
    for (i, order) in ["S-1", "S-2", "S-3", "P-1", "NEW-1"].iter().enumerate() {
        ids.push(
            c.letter(
                0,
                &format!("{}-0", 1_700_000_000_000u64 + i as u64),
                &[("job", &job(order)), ("reason", "gave_up")],
            )
            .await,
        );
    }
    let by_id = c.ok(&["dlq", "redrive", &ids[0]]);
    assert!(
        by_id.contains("payment S-1 (account main) already settled: succeeded"),
        "{by_id}"
    );
    assert_eq!(c.dlq_len().await, 5);

    let all = c.json(&["dlq", "redrive", "--all", "--json"]);
    assert_action_shape(&all, "redrive");
    assert_eq!(all["tally"]["left"], 3, "{all}");
    assert_eq!(all["tally"]["redriven"], 2, "{all}");
    for row in all["results"].as_array().unwrap() {
        let settled = ids[..3].contains(&row["id"].as_str().unwrap().to_owned());
        assert_eq!(
            row["outcome"],
            if settled { "left" } else { "redriven" },
            "{row}"
        );
        if settled {
            assert!(
                row["why"].as_str().unwrap().contains("already settled"),
                "{row}"
            );
        }
    }
    assert_eq!((c.dlq_len().await, c.queued().await), (3, 2));
    cleanup(&mut c.conn, &c.prefix).await;
}

/// Several operators re-driving everything at once: each job goes back once.
#[tokio::test]
async fn concurrent_redrive_commands_put_each_job_back_once() {
    let mut c = Console::new("dlqcli-race", 2).await;
    for i in 0..40u64 {
        c.letter(
            u32::try_from(i % 2).unwrap(),
            &format!("{}-0", 1_700_000_000_000 + i),
            &[("job", &job(&format!("R-{i}"))), ("reason", "gave_up")],
        )
        .await;
    }
    let c = std::sync::Arc::new(c);
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || c.run(&["dlq", "redrive", "--all", "--json"]))
        })
        .collect();
    let mut redriven = 0;
    for run in runs {
        let out = run.join().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        redriven += doc["tally"]["redriven"].as_u64().unwrap();
    }
    let Ok(mut c) = std::sync::Arc::try_unwrap(c) else {
        panic!("threads joined");
    };
    assert_eq!(redriven, 40, "each letter re-driven by one command");
    assert_eq!((c.dlq_len().await, c.queued().await), (0, 40));
    cleanup(&mut c.conn, &c.prefix).await;
}

/// Letters holding misplaced card data (written by an older version or by hand: a PAN and
/// a CVC in the detail, the history, the payload, the worker and an unknown field) and a
/// misplaced gateway key (the configured one, in the detail, the history and the payload)
/// never show them, as text or JSON, and a search for the PAN finds nothing.
#[tokio::test]
async fn no_dlq_output_shows_misplaced_card_data() {
    use crate::support::card_letters::{CVC, PAN, SPACED};
    let mut c = Console::new("dlqcli-card", 1).await;
    let mut seeded = Vec::new();
    for (entry, fields) in crate::support::card_letters(KEY) {
        seeded.push(c.letter(0, entry, &crate::support::as_pairs(&fields)).await);
    }
    let id = seeded[0].clone();
    let outputs = [
        c.run(&["dlq", "list"]),
        c.run(&["dlq", "list", "--json"]),
        c.run(&["dlq", "show", &id]),
        c.run(&["dlq", "show", &id, "--json"]),
        c.run(&["dlq", "show", "0/1700000000001-0"]),
        c.run(&["dlq", "show", "0/1700000000001-0", "--json"]),
        c.run(&["dlq", "list", "--grep", "card", "--json"]),
    ];
    for out in &outputs {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{all}");
        for secret in [PAN, SPACED, CVC, KEY] {
            assert!(
                !crate::support::shows(&all, secret),
                "{secret} shown:\n{all}"
            );
        }
        assert!(all.contains("[REDACTED"), "{all}");
    }
    let searched = c.json(&["dlq", "list", "--grep", PAN, "--json"]);
    assert!(
        ids(&searched).is_empty(),
        "a search for the PAN found a letter: {searched}"
    );
    let refused = c.run(&["dlq", "redrive", &id]);
    assert!(!refused.status.success());
    assert_eq!(c.queued().await, 0);
    cleanup(&mut c.conn, &c.prefix).await;
}

/// On a terminal (a pseudo-terminal from util-linux's `script`) a bulk action shows its
/// progress on standard error, rewriting one line as batches go.
#[tokio::test]
async fn a_bulk_action_shows_its_progress_on_a_terminal() {
    let mut c = Console::new("dlqcli-tty", 1).await;
    for n in 0..3 {
        c.letter(
            0,
            &format!("170000000000{n}-0"),
            &[
                ("job", &job(&format!("TTY-{n}"))),
                ("reason", "invalid"),
                ("detail", "refused"),
            ],
        )
        .await;
    }
    let command = format!(
        "{} --config {} dlq delete --all --yes",
        env!("CARGO_BIN_EXE_payworker"),
        c.config.path().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PAYWORKER_GATEWAY__ACCOUNTS__MAIN__KEY", KEY)
        .env("PAYWORKER_REDIS__KEY_PREFIX", &c.prefix)
        .env("PAYWORKER_QUEUES__CREATE_PAYMENT__PARTITIONS", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` runs (util-linux)");
    // `script` copies what the terminal showed, standard error included, to its output.
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains('\r') && shown.contains("3/3 ("),
        "progress on the terminal: {shown:?}"
    );
    assert_eq!(c.dlq_len().await, 0);
    cleanup(&mut c.conn, &c.prefix).await;
}
