//! Injected failures: what a fault does and which requests it hits (applied in `inject.rs`).
//!
//! A [`FaultRule`] matches create requests by path (or endpoint name) and order number and
//! fires `times` times (or forever). Rules added at run time are matched first, in order,
//! then the settings' default rule. A per-request `x-sandbox-fault` header (a [`Fault`] as
//! JSON) wins over every rule. Faults that "process" let the request act first (count the
//! charge, open the session) and then spoil the answer, which is what makes a timeout
//! ambiguous for the caller.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use payworker_gateway::Endpoint;

/// The request header that injects a fault into one request.
pub const FAULT_HEADER: &str = "x-sandbox-fault";

/// A way for a create request to go wrong.
///
/// As JSON: `{"kind":"latency","ms":200}`, `{"kind":"status","code":503,"retry_after":"2"}`,
/// `{"kind":"status","code":503,"processed":true}`, `{"kind":"hang"}`, `{"kind":"reset"}`,
/// `{"kind":"malformed_json"}`, `{"kind":"business","code":500,"msg":"system busy"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FaultWire", into = "FaultWire")]
pub enum Fault {
    /// Process normally, answer after this delay.
    Latency(Duration),
    /// Answer this HTTP status with a JSON error body (not the gateway's envelope), either
    /// instead of processing the request or after processing it. The second is what a proxy
    /// or load balancer in front of a gateway does when it forwarded the request and then
    /// answers 503 (upstream too slow, connection dropped): the gateway documents no meaning
    /// for any status but 200, so a client must assume either.
    Status {
        /// The HTTP status, e.g. 500, 503, 429.
        code: u16,
        /// The `Retry-After` header value, if any.
        retry_after: Option<String>,
        /// Whether the request was processed (charged, session opened) first.
        processed: bool,
    },
    /// Processed, then no answer; at shutdown the connection is cut mid-body, as with
    /// [`Fault::Reset`].
    Hang,
    /// Processed, then HTTP 200 headers and part of a body, and the connection is cut.
    Reset,
    /// Processed, then HTTP 200 with a body that is not JSON.
    MalformedJson,
    /// Not processed: an envelope with this business code and message.
    Business {
        /// The envelope's `code`.
        code: i64,
        /// The envelope's `msg`.
        msg: String,
    },
}

/// The JSON form of [`Fault`]: internally tagged, durations in milliseconds.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum FaultWire {
    Latency {
        ms: u64,
    },
    Status {
        code: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        processed: bool,
    },
    Hang,
    Reset,
    MalformedJson,
    Business {
        code: i64,
        msg: String,
    },
}

impl TryFrom<FaultWire> for Fault {
    type Error = String;
    fn try_from(w: FaultWire) -> Result<Self, String> {
        Ok(match w {
            FaultWire::Latency { ms } => Fault::Latency(Duration::from_millis(ms)),
            FaultWire::Status {
                code,
                retry_after,
                processed,
            } => {
                StatusCode::from_u16(code).map_err(|_| format!("{code} is not an HTTP status"))?;
                if let Some(v) = &retry_after {
                    HeaderValue::from_str(v).map_err(|_| "retry_after is not a header value")?;
                }
                Fault::Status {
                    code,
                    retry_after,
                    processed,
                }
            }
            FaultWire::Hang => Fault::Hang,
            FaultWire::Reset => Fault::Reset,
            FaultWire::MalformedJson => Fault::MalformedJson,
            FaultWire::Business { code, msg } => Fault::Business { code, msg },
        })
    }
}

impl From<Fault> for FaultWire {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Latency(d) => FaultWire::Latency {
                ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            },
            Fault::Status {
                code,
                retry_after,
                processed,
            } => FaultWire::Status {
                code,
                retry_after,
                processed,
            },
            Fault::Hang => FaultWire::Hang,
            Fault::Reset => FaultWire::Reset,
            Fault::MalformedJson => FaultWire::MalformedJson,
            Fault::Business { code, msg } => FaultWire::Business { code, msg },
        }
    }
}

/// Which requests a fault hits, and how often.
///
/// As JSON: `{"fault":{"kind":"hang"},"times":1,"order_no":"A1","path":"s2s"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// What happens.
    pub fault: Fault,
    /// How many requests it hits; `None` is forever.
    #[serde(default)]
    pub times: Option<u32>,
    /// Only requests for this order number; `None` is any.
    #[serde(default)]
    pub order_no: Option<String>,
    /// Only this HTTP path, or this endpoint (`host`, `element`, `s2s`, which tells S2S and
    /// Host apart on a shared path); `None` is any create request.
    #[serde(default)]
    pub path: Option<String>,
}

impl FaultRule {
    /// A rule hitting every create request, forever.
    pub fn always(fault: Fault) -> Self {
        FaultRule {
            fault,
            times: None,
            order_no: None,
            path: None,
        }
    }

    /// A rule hitting the next `n` matching requests.
    pub fn times(fault: Fault, n: u32) -> Self {
        FaultRule {
            times: Some(n),
            ..FaultRule::always(fault)
        }
    }

    /// Narrows the rule to one order number.
    pub fn for_order(self, order_no: impl Into<String>) -> Self {
        FaultRule {
            order_no: Some(order_no.into()),
            ..self
        }
    }

    /// Narrows the rule to an HTTP path or an endpoint name.
    pub fn on_path(self, path: impl Into<String>) -> Self {
        FaultRule {
            path: Some(path.into()),
            ..self
        }
    }

    pub(crate) fn matches(&self, path: &str, kind: Endpoint, order_no: Option<&str>) -> bool {
        let path_ok = self
            .path
            .as_deref()
            .is_none_or(|p| p == path || p == kind.as_str());
        let order_ok = self.order_no.as_deref().is_none_or(|o| Some(o) == order_no);
        path_ok && order_ok && self.times != Some(0)
    }

    /// Fires the rule once; whether it is used up.
    pub(crate) fn fire(&mut self) -> bool {
        if let Some(n) = &mut self.times {
            *n = n.saturating_sub(1);
            return *n == 0;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_read_and_write_their_json_form() {
        let rule: FaultRule =
            serde_json::from_str(r#"{"fault":{"kind":"latency","ms":200},"times":2,"path":"s2s"}"#)
                .unwrap();
        assert_eq!(
            rule,
            FaultRule::times(Fault::Latency(Duration::from_millis(200)), 2).on_path("s2s")
        );
        let status = Fault::Status {
            code: 503,
            retry_after: Some("2".into()),
            processed: false,
        };
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(json, r#"{"kind":"status","code":503,"retry_after":"2"}"#);
        assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), status);
        let after: Fault =
            serde_json::from_str(r#"{"kind":"status","code":503,"processed":true}"#).unwrap();
        assert_eq!(
            after,
            Fault::Status {
                code: 503,
                retry_after: None,
                processed: true
            }
        );
        let hang: Fault = serde_json::from_str(r#"{"kind":"malformed_json"}"#).unwrap();
        assert_eq!(hang, Fault::MalformedJson);
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            r#"{"kind":"status","code":42}"#,
            r#"{"kind":"explode"}"#,
            r#"{"kind":"latency","ms":1,"extra":true}"#,
        ] {
            assert!(serde_json::from_str::<Fault>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_match_by_path_endpoint_and_order() {
        let rule = FaultRule::always(Fault::Hang)
            .on_path("s2s")
            .for_order("A1");
        let path = "/open-api/payment/host";
        assert!(rule.matches(path, Endpoint::S2s, Some("A1")));
        assert!(!rule.matches(path, Endpoint::Host, Some("A1")));
        assert!(!rule.matches(path, Endpoint::S2s, Some("A2")));
        assert!(
            FaultRule::always(Fault::Hang)
                .on_path(path)
                .matches(path, Endpoint::Host, None)
        );
    }
}
