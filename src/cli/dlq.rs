//! `payworker dlq`: find, read, re-drive and delete dead letters, by id or over a filter.
//!
//! The work is the queue crate's (`payworker_queue::dlq`: filters, pages with a cursor,
//! atomic re-drive and delete, bulk actions with progress), so a web console can share it;
//! this file adds what only the application knows and what only a terminal needs:
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

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{ConfigArg, QueueName};
use crate::config::Settings;
use crate::payments::{record, rejected};
use payworker_gateway::domain::PaymentStatus;
use payworker_queue::dlq::{self, BulkAction, Cursor, Filter, Letter, LetterId, Outcome, Tally};
use payworker_queue::{QueueKeys, RedisConn};

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
    let partitions = queue.settings(settings).partitions;
    let keys = QueueKeys::all(&settings.redis.key_prefix, queue.as_str(), partitions);
    let mut conn = settings
        .redis
        .target()
        .connect(Duration::from_secs(10))
        .await?;
    let out = Out { json: args.json };
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
            let next = page.next.as_ref().map(ToString::to_string);
            if out.json {
                out.print(&json!({
                    "queue": queue.as_str(),
                    "letters": page.letters,
                    "next_cursor": next,
                }));
            } else {
                for letter in &page.letters {
                    print_letter(letter, false);
                }
                match next {
                    Some(next) => println!("more: --cursor {next}"),
                    None => println!("{} letter(s)", page.letters.len()),
                }
            }
            Ok(())
        }
        DlqAction::Show { id } => {
            let id: LetterId = id.parse()?;
            let letter = dlq::get(&mut conn, &keys, &id)
                .await?
                .with_context(|| format!("no dead letter {id} on queue {}", queue.as_str()))?;
            if out.json {
                out.print(&json!({ "letter": letter }));
            } else {
                print_letter(&letter, true);
            }
            Ok(())
        }
        DlqAction::Redrive(targets) => {
            let settled = Settled::new(settings, queue, conn.clone());
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

async fn stats(
    conn: &mut RedisConn,
    keys: &[QueueKeys],
    queue: QueueName,
    out: Out,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for k in keys {
        rows.push((k, dlq::len(conn, k).await?));
    }
    if out.json {
        out.print(&json!({
            "queue": queue.as_str(),
            "partitions": rows.iter().map(|(k, n)| json!({
                "partition": k.partition,
                "stream": k.dlq,
                "letters": n,
            })).collect::<Vec<_>>(),
            "total": rows.iter().map(|(_, n)| n).sum::<u64>(),
        }));
    } else {
        for (k, n) in rows {
            println!("{}\t{n}", k.dlq);
        }
    }
    Ok(())
}

/// Unix ms as RFC 3339 (UTC, milliseconds).
fn time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || ms.to_string(),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )
}

fn print_letter(letter: &Letter, whole: bool) {
    println!("{}", letter.id);
    println!("  reason: {}", letter.reason);
    println!("  detail: {}", letter.detail);
    println!("  dead: {}", time(letter.dead_ms));
    let count = |n: Option<u32>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    println!(
        "  attempts: {}, deliveries: {}",
        count(letter.attempts),
        count(letter.deliveries)
    );
    if letter.redacted {
        println!("  redacted: 1 (card data was removed; not re-drivable)");
    }
    if whole {
        println!("  queue: {} (partition {})", letter.queue, letter.partition);
        if let Some(first) = letter.first_failed_ms {
            println!("  first failed: {}", time(first));
        }
        if let Some(last) = letter.last_failed_ms {
            println!("  last failed: {}", time(last));
        }
        for (name, value) in [
            ("worker", &letter.worker),
            ("origin", &letter.origin_id),
            ("entry", &letter.entry_id),
        ] {
            if let Some(value) = value {
                println!("  {name}: {value}");
            }
        }
        println!("  errors:");
        for e in &letter.errors {
            println!(
                "    #{} {} {}: {}",
                e.attempt,
                time(e.at_ms),
                e.worker,
                e.error
            );
        }
        for (name, value) in &letter.other {
            println!("  {name}: {value}");
        }
        println!(
            "  redrivable: {}",
            if letter.redrivable { "yes" } else { "no" }
        );
        println!(
            "  payload: {}",
            letter.payload.as_deref().unwrap_or("(none)")
        );
    } else {
        if let Some(last) = letter.errors.last() {
            println!("  last error: {}", last.error);
        }
        if let Some(payload) = &letter.payload {
            println!("  payload: {payload}");
        }
    }
}

/// How many letters the targets name (ids that exist, or the `--all` filter's matches).
async fn matched(
    conn: &mut RedisConn,
    keys: &[QueueKeys],
    targets: &Targets,
) -> anyhow::Result<u64> {
    if targets.all {
        return Ok(dlq::count(conn, keys, &targets.filter.filter()).await?);
    }
    let mut n = 0;
    for id in &targets.ids {
        let id: LetterId = id.parse()?;
        n += u64::from(dlq::get(conn, keys, &id).await?.is_some());
    }
    Ok(n)
}

/// Re-drives or deletes the targets, prints the outcome, and fails if a letter was refused
/// or not found among ids given one by one.
async fn act(
    conn: &mut RedisConn,
    keys: &[QueueKeys],
    action: BulkAction,
    targets: &Targets,
    settled: Settled,
    out: Out,
) -> anyhow::Result<()> {
    let verb = match action {
        BulkAction::Redrive => "re-drive",
        BulkAction::Delete => "delete",
    };
    anyhow::ensure!(
        targets.all || targets.filter.is_empty(),
        "filters (--reason, --since, --until, --grep) go with --all; ids name their letters"
    );
    let (tally, results) = if targets.all {
        let filter = targets.filter.filter();
        let total = dlq::count(conn, keys, &filter).await?;
        if !out.json {
            println!("{total} dead letter(s) match");
        }
        if targets.dry_run {
            (
                Tally {
                    matched: total,
                    ..Tally::default()
                },
                Vec::new(),
            )
        } else {
            let mut results = Vec::new();
            let mut bar = Progress::new(verb, total);
            let tally = dlq::bulk(
                conn,
                keys,
                &filter,
                action,
                false,
                async |letter: &Letter| settled.check(letter).await,
                |tally: &Tally, batch: &[(LetterId, Outcome)]| {
                    bar.show(tally);
                    results.extend(batch.iter().cloned());
                },
            )
            .await?;
            bar.done();
            (tally, results)
        }
    } else {
        let mut tally = Tally::default();
        let mut results = Vec::new();
        for given in &targets.ids {
            let id: LetterId = given.parse()?;
            let Some(k) = keys.iter().find(|k| k.partition == id.partition()) else {
                anyhow::bail!("{id}: queue has no partition {}", id.partition());
            };
            let outcome = match dlq::get(conn, keys, &id).await? {
                None => Outcome::Gone,
                Some(_) if targets.dry_run => {
                    tally.matched += 1;
                    continue;
                }
                Some(letter) => {
                    tally.matched += 1;
                    match settled.check(&letter).await {
                        Some(why) => Outcome::Left { why },
                        None => single(conn, k, &id, action).await?,
                    }
                }
            };
            tally.add(&outcome);
            results.push((id, outcome));
        }
        (tally, results)
    };
    if out.json {
        out.print(&json!({
            "action": action,
            "dry_run": targets.dry_run,
            "tally": tally,
            "results": results.iter().map(|(id, outcome)| {
                let mut row = serde_json::to_value(outcome).expect("outcome serializes");
                row["id"] = json!(id);
                row
            }).collect::<Vec<_>>(),
        }));
    } else {
        for (id, outcome) in &results {
            match outcome {
                Outcome::Redriven { new_entry } => println!("{id}: re-driven as {new_entry}"),
                Outcome::Deleted => println!("{id}: deleted"),
                Outcome::Left { why } => println!("{id}: left: {why}"),
                Outcome::Refused { why } => eprintln!("{id}: refused: {why}"),
                Outcome::Gone => {
                    eprintln!("{id}: no such dead letter (re-driven or deleted already?)")
                }
            }
        }
        if targets.dry_run {
            println!(
                "dry run: would {verb} {} dead letter(s); nothing changed",
                tally.matched
            );
        } else {
            println!(
                "{} re-driven, {} deleted, {} left, {} refused, {} gone",
                tally.redriven, tally.deleted, tally.left, tally.refused, tally.gone
            );
        }
    }
    if tally.refused > 0 {
        anyhow::bail!("{} dead letter(s) refused (see above)", tally.refused);
    }
    if !targets.all && tally.gone > 0 {
        anyhow::bail!("{} dead letter(s) not found", tally.gone);
    }
    Ok(())
}

/// One letter named by id: re-driven or deleted, as the bulk action would.
async fn single(
    conn: &mut RedisConn,
    keys: &QueueKeys,
    id: &LetterId,
    action: BulkAction,
) -> anyhow::Result<Outcome> {
    Ok(match action {
        BulkAction::Delete => match dlq::delete(conn, keys, id.entry()).await? {
            true => Outcome::Deleted,
            false => Outcome::Gone,
        },
        BulkAction::Redrive => match dlq::redrive(conn, keys, id.entry()).await {
            Ok(new_entry) => Outcome::Redriven { new_entry },
            Err(dlq::RedriveError::NotFound(_)) => Outcome::Gone,
            Err(dlq::RedriveError::Redis(e)) => return Err(e.into()),
            Err(e) => Outcome::Refused { why: e.to_string() },
        },
    })
}

/// Progress of a bulk action on standard error, only when it is a terminal.
struct Progress {
    verb: &'static str,
    total: u64,
    on: bool,
}

impl Progress {
    fn new(verb: &'static str, total: u64) -> Self {
        Progress {
            verb,
            total,
            on: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, tally: &Tally) {
        if self.on {
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "\r{}: {}/{} ({} left, {} refused, {} gone)",
                self.verb, tally.matched, self.total, tally.left, tally.refused, tally.gone
            );
            let _ = err.flush();
        }
    }

    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// The application's check before re-driving: is the letter's payment already settled?
struct Settled {
    /// Redis, the key prefix and the default account; `None`: nothing is checked.
    payments: Option<(RedisConn, String, Option<String>)>,
}

impl Settled {
    fn new(settings: &Settings, queue: QueueName, conn: RedisConn) -> Self {
        if queue != QueueName::CreatePayment {
            return Settled::none();
        }
        let default = settings
            .gateway
            .default_account
            .clone()
            .or_else(|| settings.gateway.accounts.keys().next().cloned());
        Settled {
            payments: Some((conn, settings.redis.key_prefix.clone(), default)),
        }
    }

    fn none() -> Self {
        Settled { payments: None }
    }

    /// `Some(why)` when the letter's payment is `succeeded`, `failed` or `rejected`.
    /// A letter whose account and order cannot be read, or whose payment does not exist
    /// (or cannot be read), is not stopped here: the job's own rules apply when it runs.
    async fn check(&self, letter: &Letter) -> Option<String> {
        let (conn, prefix, default) = self.payments.as_ref()?;
        let payload = letter.payload.as_deref()?;
        let to = rejected::addressee(payload, default.as_deref())?;
        let key = record::key(prefix, &to.account, &to.order_no);
        let rec = record::read(&mut conn.clone(), &key).await.ok()?;
        let status = rec.status()?;
        matches!(
            status,
            PaymentStatus::Succeeded | PaymentStatus::Failed | PaymentStatus::Rejected
        )
        .then(|| {
            format!(
                "payment {} (account {}) already settled: {}; the letter stays",
                to.order_no,
                to.account,
                status.as_str()
            )
        })
    }
}
