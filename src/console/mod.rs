//! `payworker console`: the operator's web console, server-rendered HTML on axum.
//!
//! Read-mostly and safe: it shows queue depth and dead letters, and changes state only
//! through the queue crate's atomic actions (`payworker_queue::dlq`) and the application's
//! settled-payment rule (`crate::payments::settled`), the same calls `payworker dlq` makes,
//! so a job is never sent twice from here either. No JavaScript, no CDN: the pages work on a
//! machine with no internet; every value goes through `maud`'s escaping.
//!
//! - `auth`: who is asking (loopback, or the configured token as a bearer header or a
//!   cookie set by the login form) and the cross-site request forgery checks on every POST.
//! - `page`: the layout, the style sheet, and small formatting helpers.
//! - `depth`: the queues page: depth per queue and partition.
//! - `throughput`: runs finished per second per partition, from samples the console takes
//!   of each stream every few seconds.
//! - `letters`: dead letters: the filtered list with its cursor, one letter's view.
//! - `scrub`: the last line of defence: every response body is searched for the gateway
//!   keys and the console's token, which the queue crate's card masking cannot know, and
//!   they are masked wherever they were misplaced (a letter's detail, a payload).
//! - `lookup`: payments: lookup by order number with the event timeline; the `unknown` and
//!   `review_required` lists with their age; resolve, compare-and-set on the version shown.
//! - `tail`: the live tail of result events, filtered by type (a page that polls).
//! - `actions`: re-drive and delete one letter, or the filtered set after its count is
//!   typed back; every action is logged with who did what.

// Handlers answer early refusals as `Err(Response)`: one per request, on a cold path.
#![allow(clippy::result_large_err)]

mod actions;
mod auth;
mod depth;
mod letters;
mod lookup;
mod page;
mod scrub;
mod tail;
mod throughput;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use payworker_queue::RedisConn;

pub use auth::Access;

/// What every handler shares.
#[derive(Clone)]
struct Console {
    settings: Arc<Settings>,
    conn: RedisConn,
    access: Arc<Access>,
    store: Arc<crate::payments::store::PaymentStore>,
    throughput: Arc<throughput::Throughput>,
}

/// The queues the console shows: the worker's two.
const QUEUES: [&str; 2] = [
    crate::jobs::queues::CREATE_PAYMENT,
    crate::jobs::queues::PROCESS_NOTIFICATION,
];

impl Console {
    /// Every partition of every lane of `queue`, if the worker consumes it.
    fn keys(&self, queue: &str) -> Option<Vec<payworker_queue::QueueKeys>> {
        let q = &self.settings.queues;
        let settings = match queue {
            crate::jobs::queues::CREATE_PAYMENT => &q.create_payment,
            crate::jobs::queues::PROCESS_NOTIFICATION => &q.process_notification,
            _ => return None,
        };
        Some(settings.keys(&self.settings.redis.key_prefix, queue))
    }
}

/// Runs the console on `settings.console.listen` until `shutdown`.
///
/// # Errors
///
/// A non-loopback address with no token, an unreadable token file, Redis unreachable, or
/// the address taken.
pub async fn run(settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(settings.console.listen)
        .await
        .with_context(|| format!("binding the console to {}", settings.console.listen))?;
    serve(settings, listener, shutdown).await
}

/// Serves the console on `listener` (port 0 in tests) until `shutdown`.
///
/// # Errors
///
/// As [`run`].
pub async fn serve(
    settings: &Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let bound = listener.local_addr()?;
    let access = Access::from_settings(&settings.console, bound)?;
    let conn = settings
        .redis
        .target()
        .connect(Duration::from_secs(10))
        .await?;
    let console = Console {
        settings: Arc::new(settings.clone()),
        conn,
        access: Arc::new(access),
        store: Arc::new(crate::startup::payment_store(settings).await?),
        throughput: Arc::default(),
    };
    tokio::spawn(sample(console.clone(), shutdown.clone()));
    tracing::info!(address = %bound, "console listening");
    axum::serve(listener, router(console))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// Samples every partition's stream for the throughput figures, until `shutdown`.
async fn sample(console: Console, shutdown: CancellationToken) {
    loop {
        for queue in QUEUES {
            for keys in console.keys(queue).unwrap_or_default() {
                if let Some((added, length)) =
                    throughput::read(&mut console.conn.clone(), &keys).await
                {
                    let now = std::time::Instant::now();
                    console.throughput.record(&keys.stream, now, added, length);
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(throughput::EVERY) => {}
        }
    }
}

fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(depth::index))
        .route("/queues", get(depth::page))
        .route("/letters", get(letters::list))
        .route("/letter", get(letters::view))
        .route("/letter/redrive", post(actions::redrive_one))
        .route("/letter/delete", post(actions::delete_one))
        .route("/letters/bulk", get(actions::confirm).post(actions::bulk))
        .route("/payments", get(lookup::page))
        .route("/payments/resolve", post(lookup::resolve))
        .route("/tail", get(tail::page))
        .route("/style.css", get(page::style))
        .route("/login", get(auth::login_page).post(auth::login))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            auth::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(crate::config::Secrets::from_settings(&console.settings)),
            scrub::scrub,
        ))
        .with_state(console)
}
