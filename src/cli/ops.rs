//! Operator commands around the product: `enqueue`, `payment show`, `payment resolve`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use redis::AsyncCommands;

use super::QueueName;
use crate::config::Settings;
use crate::payments::record;
use crate::payments::resolve::{Decision, Resolution};
use payworker_queue::QueueKeys;

/// Arguments of `enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// A job JSON file, or `-` for standard input.
    pub file: PathBuf,
    /// The queue.
    #[arg(long, value_enum, default_value = "create_payment")]
    pub queue: QueueName,
    /// The partition: 0 up to the queue's `partitions` in the configuration, less one.
    #[arg(long, default_value_t = 0)]
    pub partition: u32,
    /// The lane: one of the queue's `lanes` in the configuration (default: the default
    /// lane, `<prefix>:{<queue>:<partition>}`).
    #[arg(long)]
    pub lane: Option<String>,
}

/// `payworker enqueue`: the one `XADD` any producer does, from the shell.
pub async fn enqueue(settings: &Settings, args: EnqueueArgs) -> anyhow::Result<()> {
    let partition = args.queue.check_partition(settings, args.partition)?;
    let lane = args.queue.check_lane(settings, args.lane.as_deref())?;
    let mut text = String::new();
    if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?;
    }
    let job: serde_json::Value = serde_json::from_str(&text).context("the job is not JSON")?;
    let keys = QueueKeys::on_lane(
        &settings.redis.key_prefix,
        args.queue.as_str(),
        lane,
        partition,
    );
    let mut conn = settings
        .redis
        .target()
        .connect(Duration::from_secs(10))
        .await?;
    let id: String = conn
        .xadd(&keys.stream, "*", &[("job", job.to_string())])
        .await?;
    println!("{} {id}", keys.stream);
    Ok(())
}

/// Payment commands.
#[derive(Debug, Subcommand)]
pub enum PaymentCommand {
    /// Show a payment's record (status, version, gateway ids, the last event's id) and its
    /// event timeline from the results streams, oldest version first.
    #[command(after_help = "Examples:
  payworker payment show ORDER-1001
  payworker payment show ORDER-1001 --json
  payworker payment show ORDER-1001 --account main --config /etc/payworker/worker.yaml")]
    Show {
        /// The merchant's order number.
        order_no: String,
        /// The account (default: the default or first one).
        #[arg(long)]
        account: Option<String>,
        /// Print one JSON document: `{"key", "record", "events", "events_truncated"}`.
        #[arg(long)]
        json: bool,
    },
    /// Record a person's decision on a payment in `unknown` or `review_required`, after
    /// checking it with the gateway: one version-checked change, with its event
    /// (`payment.succeeded` / `payment.failed`, `data.resolved_by`). Refused for any other
    /// status, and if the payment changes meanwhile; nothing is written then.
    #[command(
        after_help = "Example:\n  payworker payment resolve A-1001 --status succeeded \\\n    --payment-id pi_3Nx --reason \"charged, per the gateway dashboard\""
    )]
    Resolve(ResolveArgs),
}

/// Arguments of `payment resolve`.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The merchant's order number.
    pub order_no: String,
    /// The account (default: the default or first one).
    #[arg(long)]
    pub account: Option<String>,
    /// What the gateway says happened.
    #[arg(long, value_enum)]
    pub status: ResolveStatus,
    /// What was checked, in the record and the event (1 to 200 characters).
    #[arg(long)]
    pub reason: String,
    /// The gateway's payment id; required for `succeeded` when the record has none, and it
    /// must match the record's when it has one.
    #[arg(long)]
    pub payment_id: Option<String>,
    /// Who decides (default: $USER).
    #[arg(long, env = "USER")]
    pub by: Option<String>,
}

/// The outcomes a person may record.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ResolveStatus {
    /// The gateway charged the payment.
    Succeeded,
    /// The gateway did not charge it.
    Failed,
}

/// `payworker payment show` and `payment resolve`.
pub async fn payment(settings: &Settings, command: PaymentCommand) -> anyhow::Result<()> {
    match command {
        PaymentCommand::Show {
            order_no,
            account,
            json,
        } => show(settings, &order_no, account, json).await,
        PaymentCommand::Resolve(args) => resolve(settings, args).await,
    }
}

fn account_or_default(settings: &Settings, account: Option<String>) -> anyhow::Result<String> {
    match account {
        Some(a) => Ok(a),
        None => settings
            .gateway
            .default_account
            .clone()
            .or_else(|| settings.gateway.accounts.keys().next().cloned())
            .context("no account configured"),
    }
}

async fn resolve(settings: &Settings, args: ResolveArgs) -> anyhow::Result<()> {
    let account = account_or_default(settings, args.account)?;
    anyhow::ensure!(
        settings.gateway.accounts.contains_key(&account),
        "account {account} is not configured (gateway.accounts)"
    );
    let by = args
        .by
        .context("say who decides: --by NAME ($USER is not set)")?;
    let decision = Decision {
        resolution: match args.status {
            ResolveStatus::Succeeded => Resolution::Succeeded,
            ResolveStatus::Failed => Resolution::Failed,
        },
        reason: args.reason,
        by,
        payment_id: args.payment_id,
    };
    let store = crate::startup::payment_store(settings).await?;
    let resolved = store.resolve(&account, &args.order_no, &decision).await?;
    let rec = &resolved.record;
    println!(
        "{}: {} -> {} (version {}, event {})",
        args.order_no,
        resolved.previous_status,
        rec.get("status").unwrap_or_default(),
        rec.version(),
        rec.get("event_id").unwrap_or_default()
    );
    Ok(())
}

async fn show(
    settings: &Settings,
    order_no: &str,
    account: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let account = account_or_default(settings, account)?;
    let key = record::key(&settings.redis.key_prefix, &account, order_no);
    let mut conn = settings
        .redis
        .target()
        .connect(Duration::from_secs(10))
        .await?;
    let rec = record::read(&mut conn, &key).await?;
    anyhow::ensure!(
        !rec.is_empty(),
        "no payment {order_no} for account {account} ({key})"
    );
    let mut fields: Vec<(&String, &str)> = rec
        .fields()
        .iter()
        .filter(|(k, _)| k.as_str() != "pending_event")
        .map(|(name, value)| {
            let shown = if name == "client_secret" && !value.is_empty() {
                "[hidden: in the payment.created event]"
            } else {
                value.as_str()
            };
            (name, shown)
        })
        .collect();
    fields.sort();
    let since = crate::payments::timeline::since(&rec);
    let timeline = crate::payments::timeline::read(
        &mut conn,
        &settings.results.streams,
        &account,
        order_no,
        since,
    )
    .await?;
    if json {
        let record: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).clone(), serde_json::Value::from(*v)))
            .collect();
        let document = serde_json::json!({
            "key": key,
            "record": record,
            "events": timeline.events,
            "events_truncated": timeline.truncated,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    println!("{key}");
    for (name, value) in fields {
        println!("  {name}: {value}");
    }
    println!("events ({}, by version):", timeline.events.len());
    for event in &timeline.events {
        let text = |field: &str| event[field].as_str().unwrap_or("-").to_owned();
        println!(
            "  v{:<3} {:<28} {:<16} {}  {}",
            event["version"],
            text("type"),
            text("status"),
            text("occurred_at"),
            text("event_id")
        );
    }
    if timeline.truncated {
        println!(
            "  (stopped after {} entries of a results stream: older events may be missing)",
            crate::payments::timeline::SCAN_CAP
        );
    }
    Ok(())
}
