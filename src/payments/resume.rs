//! A job whose order already had a record when it claimed it: another job's order (a
//! duplicate), this job delivered again after its change (re-publish the stored event), an
//! S2S request that may be on the wire (never resent: `unknown`), or a retry that may send
//! again (marked first).

use serde_json::json;

use super::create::{CreatePayments, retry};
use super::events::{self, Change};
use super::outcome::unserializable;
use super::record::{self, Record};
use crate::jobs::{CreatePayment, Method};
use crate::queue::{JobError, JobMeta, RedisConn};

impl CreatePayments {
    /// Decides what a job does with an order that already has the record `rec`. Returns
    /// the job's result if it is finished here, or `None` once the record is marked for
    /// another attempt (the caller then sends the request).
    pub(super) async fn resume(
        &self,
        conn: &mut RedisConn,
        key: &str,
        rec: &Record,
        job: &CreatePayment,
        meta: &JobMeta,
        trace: Option<serde_json::Value>,
    ) -> Option<Result<(), JobError>> {
        let streams = self.streams(rec);
        if rec.get("owner") != meta.origin_id {
            // Another job created this order: never a second request. Say so, and ack.
            let change = Change {
                kind: "payment.duplicate_ignored",
                previous_status: Some(rec.get("status")),
                version: rec.version(),
                data: json!({ "reason": format!("order {} already exists (job {})", job.order_no, rec.get("owner")) }),
                trace,
                id_seed: Some(format!("payment.duplicate_ignored/{}", meta.origin_id)),
            };
            let event = match events::build(rec, &[], &change, rec.get("status")) {
                Ok(event) => event,
                Err(e) => return Some(Err(unserializable(e))),
            };
            return Some(
                events::publish(conn, &streams, self.results_max_len, &event)
                    .await
                    .map_err(retry),
            );
        }
        match (rec.get("status"), rec.get("phase")) {
            ("pending", "sending") if job.method == Method::S2s => {
                let reason = "the job was delivered again after its request may have reached the gateway; not resent";
                return Some(self.unknown(conn, key, rec, reason.to_owned(), trace).await);
            }
            ("pending", _) => {}
            _ => {
                // Already past this job's work (a redelivery after the change): publish the
                // stored event again, same id, then ack.
                let event = rec.get("event");
                if !event.is_empty()
                    && let Err(e) =
                        events::publish(conn, &streams, self.results_max_len, event).await
                {
                    return Some(Err(retry(e)));
                }
                return Some(Ok(()));
            }
        }

        let attempts = rec.get("attempts").parse::<u32>().unwrap_or(0) + 1;
        let mut marks = vec![("attempts", attempts.to_string())];
        if job.method == Method::S2s {
            marks.push(("phase", "sending".to_owned()));
        }
        match record::change(conn, key, rec.version(), false, &marks).await {
            Ok(true) => None,
            Ok(false) => Some(Err(JobError::retry("the payment record changed meanwhile"))),
            Err(e) => Some(Err(retry(e))),
        }
    }
}
