//! `payworker dlq`: inspect and re-drive dead letters.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::{ConfigArg, QueueName};
use crate::config::Settings;
use payworker_queue::{QueueKeys, dlq};

/// Arguments of `dlq`. The options are global to the actions, so that `dlq stats --queue X`
/// works as well as `dlq --queue X stats`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The queue.
    #[arg(long, value_enum, default_value = "create_payment", global = true)]
    pub queue: QueueName,
    /// The configuration file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// What to do.
    #[command(subcommand)]
    pub action: DlqAction,
}

/// Dead-letter actions.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Count dead letters per partition.
    Stats,
    /// Show the oldest dead letters (reason, detail, history; the payload is redacted).
    List {
        /// How many per partition.
        #[arg(long, default_value_t = 20)]
        count: usize,
    },
    /// Put dead letters back on the queue as fresh jobs (after fixing the cause); a letter
    /// whose payload was redacted (`redacted: 1`) is refused.
    Redrive {
        /// Entry ids, as `list` shows them (`PARTITION/ID`), or `all`.
        ids: Vec<String>,
    },
}

/// Runs a `dlq` action.
pub async fn run(settings: &Settings, args: DlqArgs) -> anyhow::Result<()> {
    let partitions = args.queue.settings(settings).partitions;
    let keys = QueueKeys::all(&settings.redis.key_prefix, args.queue.as_str(), partitions);
    let mut conn = settings
        .redis
        .target()
        .connect(Duration::from_secs(10))
        .await?;
    match args.action {
        DlqAction::Stats => {
            for k in &keys {
                println!("{}\t{}", k.dlq, dlq::len(&mut conn, k).await?);
            }
        }
        DlqAction::List { count } => {
            for k in &keys {
                for (id, fields) in dlq::list(&mut conn, k, count).await? {
                    println!("{}/{id}", k.partition);
                    for (name, value) in fields {
                        // Letters written by older versions may hold what redaction removes now.
                        let value = payworker_queue::redact::letter_field(&name, &value);
                        println!("  {name}: {value}");
                    }
                }
            }
        }
        DlqAction::Redrive { ids } => {
            let mut todo = Vec::new();
            if ids.iter().any(|i| i == "all") {
                for k in &keys {
                    for (id, _) in dlq::list(&mut conn, k, usize::MAX >> 1).await? {
                        todo.push((k, id));
                    }
                }
            } else {
                for given in &ids {
                    let (p, id) = given.split_once('/').ok_or_else(|| {
                        anyhow::anyhow!("{given:?}: write PARTITION/ID as `list` shows")
                    })?;
                    let p: usize = p.parse()?;
                    let k = keys
                        .get(p)
                        .ok_or_else(|| anyhow::anyhow!("no partition {p}"))?;
                    todo.push((k, id.to_owned()));
                }
            }
            let mut refused = 0;
            for (k, id) in todo {
                match dlq::redrive(&mut conn, k, &id).await {
                    Ok(new_id) => println!("{}/{id} -> {} {new_id}", k.partition, k.stream),
                    Err(e @ dlq::RedriveError::Redacted(_)) => {
                        eprintln!("{}/{id}: {e}", k.partition);
                        refused += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if refused > 0 {
                anyhow::bail!("{refused} redacted dead letter(s) not re-driven");
            }
        }
    }
    Ok(())
}
