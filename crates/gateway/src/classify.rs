//! What a gateway answer (or the lack of one) means, as one pure function.
//!
//! [`classify`] maps a transport result onto what is known about it; [`decide`] turns that
//! into what the worker does next for a given endpoint. The HTTP adapter only reports what
//! happened on the wire ([`Exchange`]); every judgement is made here.
//!
//! The gateway documents one meaning per answer: HTTP 200 with its envelope, `code` 200 a
//! success and any other `code` a business rejection. No other HTTP status has a documented
//! meaning, and a 503, 429 or 408 may come from a proxy in front of the gateway after it
//! forwarded the request. So for a server-to-server charge (no idempotency key: a resend
//! may charge twice) only a failure before any byte left proves that nothing happened; every
//! other failure leaves the outcome unknown until the gateway's notification settles it.
//! Hosted checkout and Element only open a session, so they are sent again.

use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::endpoint::Endpoint;
use super::headers::UnixTime;
use super::response::{CODE_OK, Envelope};

/// What happened on the wire, as the HTTP adapter saw it.
#[derive(Debug, Clone)]
pub enum Exchange {
    /// A complete HTTP response.
    Reply {
        /// HTTP status.
        status: u16,
        /// The `Retry-After` header, if any.
        retry_after: Option<String>,
        /// The body.
        body: Bytes,
    },
    /// Failed before any byte of the request could have reached the gateway: connection
    /// refused, DNS, TLS handshake, connect timeout.
    NotSent(String),
    /// Failed after the request may have been received: timeout waiting for the answer,
    /// reset mid-response, a body that broke off.
    MaybeReceived(String),
}

/// The meaning of an exchange.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// `code` 200 with the expected `data`.
    Success(T),
    /// The gateway refused the request (an envelope whose `code` is not 200): permanent.
    Rejected {
        /// The business code.
        code: i64,
        /// The gateway's reason.
        msg: String,
    },
    /// Nothing left this side: connection refused, DNS, TLS handshake, connect timeout.
    /// Nothing can have happened; any request may be sent again.
    NotSent {
        /// What happened.
        reason: String,
    },
    /// HTTP 408, 429 or 503: "not now", from the gateway or a proxy in front of it. Most
    /// likely nothing was done, but the meaning is not documented: it proves nothing.
    Throttled {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header, as a delay.
        retry_after: Option<Duration>,
    },
    /// Another 4xx without the gateway's envelope: refused by the gateway or something in
    /// front of it, with no documented meaning.
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// A 5xx other than 503: the gateway, or a proxy in front of it, failed while handling
    /// the request, perhaps after acting on it.
    ServerError {
        /// The HTTP status.
        status: u16,
    },
    /// The gateway may or may not have acted on the request: no answer after sending, a
    /// broken answer, a success that does not parse.
    Ambiguous {
        /// What happened.
        reason: String,
    },
}

/// Classifies an exchange; `now` resolves an HTTP-date `Retry-After`.
pub fn classify<T: DeserializeOwned>(exchange: Exchange, now: UnixTime) -> Outcome<T> {
    let (status, retry_after, body) = match exchange {
        Exchange::NotSent(reason) => {
            return Outcome::NotSent {
                reason: format!("not sent: {reason}"),
            };
        }
        Exchange::MaybeReceived(reason) => {
            return Outcome::Ambiguous {
                reason: format!("no answer after sending: {reason}"),
            };
        }
        Exchange::Reply {
            status,
            retry_after,
            body,
        } => (status, retry_after, body),
    };
    let envelope = serde_json::from_slice::<Envelope>(&body).ok();
    match status {
        429 | 503 | 408 => Outcome::Throttled {
            status,
            retry_after: retry_after
                .as_deref()
                .and_then(|v| parse_retry_after(v, now)),
        },
        500..=599 => Outcome::ServerError { status },
        200..=299 => match envelope {
            Some(e) if e.code == CODE_OK => {
                let data = e.data.as_deref().map(|raw| raw.get()).unwrap_or("null");
                match serde_json::from_str::<T>(data) {
                    Ok(value) => Outcome::Success(value),
                    Err(err) => Outcome::Ambiguous {
                        reason: format!("code 200 but data does not parse: {err}"),
                    },
                }
            }
            Some(e) => Outcome::Rejected {
                code: e.code,
                msg: e.msg,
            },
            None => Outcome::Ambiguous {
                reason: format!("HTTP {status} with a body that is not the gateway's envelope"),
            },
        },
        _ => match envelope {
            Some(e) if e.code != CODE_OK => Outcome::Rejected {
                code: e.code,
                msg: e.msg,
            },
            _ => Outcome::Refused { status },
        },
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date; a date in the past means now.
pub fn parse_retry_after(value: &str, now: UnixTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value)
        .ok()?
        .timestamp();
    let at = u64::try_from(at).ok()?;
    Some(Duration::from_secs(at.saturating_sub(now.0)))
}

/// What the worker does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<T> {
    /// Done: record the result.
    Done(T),
    /// Send again, no sooner than the given delay (else the queue's backoff).
    RetryAfter(Option<Duration>, String),
    /// The gateway (or a proxy in front of it) said "not now" to a request that is safe to
    /// send again: a 429 (a quota), or a 503 or 408 that says when to come back
    /// (`Retry-After`). Send it again after the given delay (its `Retry-After`, else a
    /// short default) without counting this as a failed attempt: a quota is not the job's
    /// fault, and a job that spent attempts on it would be dead-lettered by load. A 503 or
    /// 408 without `Retry-After` is a failure like a 5xx (`RetryAfter`): it backs off and
    /// ends, where waiting on a gateway that is down is the circuit breaker's business.
    NotNow(Option<Duration>, String),
    /// Stop for good with this reason.
    GiveUp(String),
    /// The outcome is unknown: do not resend; wait for the gateway's notification.
    AwaitNotification(String),
}

/// The retry decision for an endpoint: a request that may have been processed is sent
/// again only where resending is safe ([`Endpoint::resend_is_safe`]). `resend_on` lists
/// HTTP statuses an operator knows to mean "not processed" for this gateway (config
/// `gateway.s2s_resend_on_status`, empty by default): for them an S2S charge is sent again.
pub fn decide<T>(endpoint: Endpoint, outcome: Outcome<T>, resend_on: &[u16]) -> Decision<T> {
    let safe = endpoint.resend_is_safe();
    match outcome {
        Outcome::Success(v) => Decision::Done(v),
        Outcome::Rejected { code, msg } => Decision::GiveUp(format!("gateway code {code}: {msg}")),
        Outcome::NotSent { reason } => Decision::RetryAfter(None, reason),
        Outcome::Throttled {
            status,
            retry_after,
        } if safe && (status == 429 || retry_after.is_some()) => {
            Decision::NotNow(retry_after, format!("HTTP {status}"))
        }
        Outcome::Throttled {
            status,
            retry_after,
        } if safe => Decision::RetryAfter(retry_after, format!("HTTP {status}")),
        Outcome::Throttled {
            status,
            retry_after,
        } if resend_on.contains(&status) => {
            Decision::RetryAfter(retry_after, format!("HTTP {status}"))
        }
        Outcome::Throttled { status, .. } => Decision::AwaitNotification(format!(
            "HTTP {status} after the request was sent: the gateway (or a proxy in front of it) \
             may have processed it; not resent"
        )),
        Outcome::Refused { status } if resend_on.contains(&status) => {
            Decision::RetryAfter(None, format!("HTTP {status}"))
        }
        Outcome::Refused { status } if safe => Decision::GiveUp(format!("HTTP {status}")),
        Outcome::Refused { status } => Decision::AwaitNotification(format!(
            "HTTP {status} without the gateway's answer: its meaning is not documented, so the \
             charge may have been processed; not resent"
        )),
        Outcome::ServerError { status } if safe || resend_on.contains(&status) => {
            Decision::RetryAfter(None, format!("HTTP {status}"))
        }
        Outcome::ServerError { status } => Decision::AwaitNotification(format!("HTTP {status}")),
        Outcome::Ambiguous { reason } if safe => Decision::RetryAfter(None, reason),
        Outcome::Ambiguous { reason } => Decision::AwaitNotification(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled(status: u16) -> Outcome<()> {
        Outcome::Throttled {
            status,
            retry_after: Some(Duration::from_secs(2)),
        }
    }

    #[test]
    fn an_s2s_charge_is_resent_only_when_nothing_left() {
        let not_sent = || Outcome::<()>::NotSent {
            reason: "refused".into(),
        };
        assert!(matches!(
            decide(Endpoint::S2s, not_sent(), &[]),
            Decision::RetryAfter(None, _)
        ));
        for outcome in [
            throttled(503),
            throttled(429),
            throttled(408),
            Outcome::Refused { status: 404 },
            Outcome::ServerError { status: 500 },
        ] {
            assert!(
                matches!(
                    decide(Endpoint::S2s, outcome.clone(), &[]),
                    Decision::AwaitNotification(_)
                ),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn an_operator_may_name_statuses_that_mean_not_processed() {
        assert_eq!(
            decide(Endpoint::S2s, throttled(503), &[503]),
            Decision::RetryAfter(Some(Duration::from_secs(2)), "HTTP 503".into())
        );
        assert!(matches!(
            decide(Endpoint::S2s, throttled(429), &[503]),
            Decision::AwaitNotification(_)
        ));
    }

    /// Every status the config accepts (400 to 599) means what the operator says it means:
    /// a listed 502 is sent again, as a listed 503 is; an unlisted 500 still is not.
    #[test]
    fn a_listed_server_error_is_resent_and_an_unlisted_one_is_not() {
        let reply = |status| Exchange::Reply {
            status,
            retry_after: None,
            body: Bytes::from_static(b"<html>bad gateway</html>"),
        };
        let now = UnixTime::now();
        assert_eq!(
            decide(Endpoint::S2s, classify::<()>(reply(502), now), &[502]),
            Decision::RetryAfter(None, "HTTP 502".into())
        );
        assert!(matches!(
            decide(Endpoint::S2s, classify::<()>(reply(500), now), &[502]),
            Decision::AwaitNotification(_)
        ));
    }

    #[test]
    fn sessions_are_opened_again_after_any_failure_but_a_refusal() {
        for endpoint in [Endpoint::Host, Endpoint::Element] {
            for status in [429, 503, 408] {
                assert_eq!(
                    decide(endpoint, throttled(status), &[]),
                    Decision::NotNow(Some(Duration::from_secs(2)), format!("HTTP {status}")),
                    "a throttled session is sent again without spending an attempt"
                );
            }
            let bare = |status| Outcome::<()>::Throttled {
                status,
                retry_after: None,
            };
            assert_eq!(
                decide(endpoint, bare(429), &[]),
                Decision::NotNow(None, "HTTP 429".into()),
                "a quota without Retry-After still spends no attempt"
            );
            for status in [503, 408] {
                assert_eq!(
                    decide(endpoint, bare(status), &[]),
                    Decision::RetryAfter(None, format!("HTTP {status}")),
                    "a 503 or 408 that does not say when is a failure"
                );
            }
            assert!(matches!(
                decide(
                    endpoint,
                    Outcome::<()>::Ambiguous {
                        reason: "reset".into()
                    },
                    &[]
                ),
                Decision::RetryAfter(None, _)
            ));
            assert!(matches!(
                decide(endpoint, Outcome::<()>::Refused { status: 403 }, &[]),
                Decision::GiveUp(_)
            ));
        }
        assert!(matches!(
            decide(
                Endpoint::S2s,
                Outcome::<()>::Rejected {
                    code: 402,
                    msg: "declined".into()
                },
                &[]
            ),
            Decision::GiveUp(_)
        ));
    }
}
