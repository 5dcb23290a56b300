//! `payworker dlq`: find, read, re-drive and delete dead letters, by id or over a filter.
//!
//! The work is the queue crate's (`payworker_queue::dlq`: filters, pages with a cursor,
//! atomic re-drive and delete, bulk actions with progress), so a web console can share it;
//! this module adds what only the application knows and what only a terminal needs
//! (`act`: `redrive` and `delete`; `print`: the text of `stats`, `list` and `show`):
//!
//! - A `create_payment` letter whose payment already settled (`succeeded`, `failed`,
//!   `rejected`: read from the payment record by the letter's account and order number) is
//!   left where it is and the command says so. Re-driving it would be harmless (the job's
//!   idempotency and send rules stop a second charge), but it would only add noise, and the
//!   letter is the operator's record of what went wrong.
//! - `--json` prints one document per command, in the shapes the README documents
//!   (Operating, dead letters), for scripts; text is for people and may change.
//! - Bulk actions (`--all`) print how many letters match first; `delete` needs `--yes`;
//!   progress goes to standard error only when it is a terminal.

mod act;
mod print;

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{ConfigArg, QueueName};
use crate::config::{Secrets, Settings};
use act::{Settled, act, matched};
use payworker_queue::dlq::{self, BulkAction, Cursor, Filter, Letter, LetterId};
use print::{print_letter, stats};

/// Arguments of `dlq`. The options are global to the actions, so that `dlq stats --queue X`
/// works as well as `dlq --queue X stats`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The queue.
    #[arg(long, value_enum, default_value = "create_payment", global = true)]
    pub queue: QueueName,
    /// Print one JSON document (shapes: README, "Dead letters").
    #[arg(long, global = true)]
    pub json: bool,
    /// The configuration file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// What to do.
    #[command(subcommand)]
    pub action: DlqAction,
}

/// Which letters, for `list` and the `--all` actions: every condition given must hold.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    /// Only letters with this reason code (repeat for any of several).
    #[arg(long = "reason", value_name = "R")]
    pub reasons: Vec<String>,
    /// Only letters dead-lettered since: a duration ago (`2h`, `30m`, `1d`) or an RFC 3339
    /// time (`2026-11-30T08:00:00Z`).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub since: Option<u64>,
    /// Only letters dead-lettered before: a duration ago or an RFC 3339 time.
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub until: Option<u64>,
    /// Only letters whose detail, error history or (redacted) payload contains this text,
    /// ignoring case.
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> Filter {
        Filter {
            reasons: self.reasons.clone(),
            since_ms: self.since,
            until_ms: self.until,
            text: self.grep.clone(),
        }
    }

    fn is_empty(&self) -> bool {
        self.reasons.is_empty()
            && self.since.is_none()
            && self.until.is_none()
            && self.grep.is_none()
    }
}

/// Parses `--since`/`--until`: a duration before now, or an RFC 3339 time; Unix ms.
fn parse_time(text: &str) -> Result<u64, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        let ago = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX);
        return Ok(payworker_queue::now_ms().saturating_sub(ago));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| u64::try_from(t.timestamp_millis()).unwrap_or(0))
        .map_err(|_| {
            format!("{text:?}: give a duration ago (2h, 30m, 1d) or an RFC 3339 time (2026-11-30T08:00:00Z)")
        })
}

/// Which letters an action takes: ids, or `--all` with filters.
#[derive(Debug, Clone, Args)]
pub struct Targets {
    /// Letter ids, as `list` shows them (`PARTITION/ID`).
    #[arg(
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub ids: Vec<String>,
    /// Every letter the filters match (every letter of the queue without filters).
    #[arg(long)]
    pub all: bool,
    /// Which letters, with `--all`.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Say what would be done (how many letters match) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Dead-letter actions.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Count dead letters per partition.
    Stats,
    /// List dead letters, newest first, a page at a time (the payload is redacted).
    #[command(after_help = "Examples:
  payworker dlq list --reason gave_up --since 2h
  payworker dlq list --grep ORDER-1001 --json
  payworker dlq list --cursor <next_cursor of the previous page>")]
    List {
        /// Which letters.
        #[command(flatten)]
        filter: FilterArgs,
        /// Letters per page.
        #[arg(long, alias = "count", default_value_t = 20)]
        limit: usize,
        /// Continue after the page that printed this cursor (same filters).
        #[arg(long, value_name = "C")]
        cursor: Option<String>,
    },
    /// Show one dead letter whole: reason, detail, history, times, payload (redacted).
    Show {
        /// The letter, as `list` shows it (`PARTITION/ID`).
        id: String,
    },
    /// Put dead letters back on the queue as the same jobs (after fixing the cause). A
    /// letter whose payload was redacted (`redacted: 1`) is refused; a `create_payment`
    /// letter whose payment already settled is left where it is.
    #[command(after_help = "Examples:
  payworker dlq redrive 0/1764500000000-0
  payworker dlq redrive --all --reason gave_up --since 1h --dry-run")]
    Redrive(Targets),
    /// Delete dead letters for good (their jobs are lost); needs `--yes`.
    #[command(after_help = "Examples:
  payworker dlq delete 0/1764500000000-0 --yes
  payworker dlq delete --all --reason invalid --until 7d --yes")]
    Delete {
        /// Which letters.
        #[command(flatten)]
        targets: Targets,
        /// Yes, delete them.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a `dlq` action.
pub async fn run(settings: &Settings, args: DlqArgs) -> anyhow::Result<()> {
    let queue = args.queue;
    let keys = queue
        .settings(settings)
        .keys(&settings.redis.key_prefix, queue.as_str());
    let mut conn = settings
        .redis
        .target()
        .connect(Duration::from_secs(10))
        .await?;
    let out = Out { json: args.json };
    let secrets = Secrets::from_settings(settings);
    match args.action {
        DlqAction::Stats => stats(&mut conn, &keys, queue, out).await,
        DlqAction::List {
            filter,
            limit,
            cursor,
        } => {
            let cursor = cursor
                .map(|c| c.parse::<Cursor>())
                .transpose()
                .context("--cursor")?;
            let page = dlq::page(
                &mut conn,
                &keys,
                &filter.filter(),
                cursor.as_ref(),
                limit.max(1),
            )
            .await?;
            let letters: Vec<Letter> = page.letters.iter().map(|l| masked(l, &secrets)).collect();
            let next = page.next.as_ref().map(ToString::to_string);
            if out.json {
                out.print(&json!({
                    "queue": queue.as_str(),
                    "letters": letters,
                    "next_cursor": next,
                }));
            } else {
                for letter in &letters {
                    print_letter(letter, false);
                }
                match next {
                    Some(next) => println!("more: --cursor {next}"),
                    None => println!("{} letter(s)", letters.len()),
                }
            }
            Ok(())
        }
        DlqAction::Show { id } => {
            let id: LetterId = id.parse()?;
            let letter = dlq::get(&mut conn, &keys, &id)
                .await?
                .with_context(|| format!("no dead letter {id} on queue {}", queue.as_str()))?;
            let letter = masked(&letter, &secrets);
            if out.json {
                out.print(&json!({ "letter": letter }));
            } else {
                print_letter(&letter, true);
            }
            Ok(())
        }
        DlqAction::Redrive(targets) => {
            let settled = match queue {
                QueueName::CreatePayment => Settled::payments(settings, conn.clone()),
                QueueName::ProcessNotification => Settled::none(),
            };
            act(
                &mut conn,
                &keys,
                BulkAction::Redrive,
                &targets,
                settled,
                out,
            )
            .await
        }
        DlqAction::Delete { targets, yes } => {
            if !yes && !targets.dry_run {
                let matched = matched(&mut conn, &keys, &targets).await?;
                anyhow::bail!(
                    "{matched} dead letter(s) match; deleting loses their jobs for good: add --yes \
                     to delete them (nothing was deleted)"
                );
            }
            let settled = Settled::none();
            act(&mut conn, &keys, BulkAction::Delete, &targets, settled, out).await
        }
    }
}

/// Where output goes: one JSON document, or text for people.
#[derive(Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    fn print(&self, document: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(document).expect("JSON serializes")
        );
    }
}

/// `letter` with the configured secrets masked in every text it carries: the queue crate
/// masks card data but cannot know the keys (see `config::Secrets`).
fn masked(letter: &Letter, secrets: &Secrets) -> Letter {
    let mask = |text: &str| secrets.mask(text).into_owned();
    let mut letter = letter.clone();
    letter.detail = mask(&letter.detail);
    letter.worker = letter.worker.as_deref().map(mask);
    letter.payload = letter.payload.as_deref().map(mask);
    for error in &mut letter.errors {
        error.error = mask(&error.error);
        error.worker = mask(&error.worker);
    }
    for value in letter.other.values_mut() {
        *value = mask(value);
    }
    letter
}
