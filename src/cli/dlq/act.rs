//! `dlq redrive` and `dlq delete`: by id or over a filter (`--all`), with a dry run, the
//! count first, progress on a terminal, and the application's one rule on top of the queue
//! crate's actions: a `create_payment` letter whose payment already settled is left alone.

use std::io::{IsTerminal as _, Write as _};

use serde_json::json;

use super::{Out, Targets};
pub(super) use crate::payments::settled::Settled;
use payworker_queue::dlq::{self, BulkAction, Letter, LetterId, Outcome, Tally};
use payworker_queue::{QueueKeys, RedisConn};

/// How many letters the targets name (ids that exist, or the `--all` filter's matches).
pub(super) async fn matched(
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
pub(super) async fn act(
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
            let Some(k) = keys.iter().find(|k| id.is_on(k)) else {
                anyhow::bail!("{id}: queue has no partition {}", id.place());
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
