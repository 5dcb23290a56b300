//! Operator commands around the product: `worker`, `enqueue`, `payment show`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use redis::AsyncCommands;

use super::QueueName;
use crate::config::Settings;
use crate::payments::record;
use crate::queue::QueueKeys;

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
}

/// `payworker enqueue`: the one `XADD` any producer does, from the shell.
pub async fn enqueue(settings: &Settings, args: EnqueueArgs) -> anyhow::Result<()> {
    let partition = args.queue.check_partition(settings, args.partition)?;
    let mut text = String::new();
    if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?;
    }
    let job: serde_json::Value = serde_json::from_str(&text).context("the job is not JSON")?;
    let keys = QueueKeys::new(&settings.redis.key_prefix, args.queue.as_str(), partition);
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
    /// Show a payment's record: status, version, gateway ids, the last event's id.
    #[command(after_help = "Examples:
  payworker payment show ORDER-1001
  payworker payment show ORDER-1001 --account main --config /etc/payworker/worker.yaml")]
    Show {
        /// The merchant's order number.
        order_no: String,
        /// The account (default: the default or first one).
        #[arg(long)]
        account: Option<String>,
    },
}

/// `payworker payment show`.
pub async fn payment(settings: &Settings, command: PaymentCommand) -> anyhow::Result<()> {
    let PaymentCommand::Show { order_no, account } = command;
    let account = match account {
        Some(a) => a,
        None => settings
            .gateway
            .default_account
            .clone()
            .or_else(|| settings.gateway.accounts.keys().next().cloned())
            .context("no account configured")?,
    };
    let key = record::key(&settings.redis.key_prefix, &account, &order_no);
    let mut conn = settings
        .redis
        .target()
        .connect(Duration::from_secs(10))
        .await?;
    let rec = record::read(&mut conn, &key).await?;
    anyhow::ensure!(
        !rec.0.is_empty(),
        "no payment {order_no} for account {account} ({key})"
    );
    let mut fields: Vec<_> = rec
        .0
        .iter()
        .filter(|(k, _)| k.as_str() != "pending_event")
        .collect();
    fields.sort();
    println!("{key}");
    for (name, value) in fields {
        let shown = if name == "client_secret" && !value.is_empty() {
            "[hidden: in the payment.created event]"
        } else {
            value
        };
        println!("  {name}: {shown}");
    }

    Ok(())
}
