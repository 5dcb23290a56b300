//! The gateway's answer: always HTTP 200 with a `{code, msg, data}` JSON envelope, and the
//! business codes the sandbox uses.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The sandbox's business codes (the gateway documents none, `docs/gateway.md#errors`;
/// these are the sandbox's choice).
pub mod codes {
    /// Success.
    pub const OK: i64 = 200;
    /// The body is not valid: not JSON, a field of the wrong type, a limit broken, a card
    /// that cannot be decrypted or is malformed.
    pub const INVALID: i64 = 400;
    /// A signed header is missing or malformed, or the signature does not match.
    pub const UNAUTHENTICATED: i64 = 401;
    /// The card was declined (a test card says so).
    pub const DECLINED: i64 = 402;
    /// The account is unknown, or the `site` is not the account's bound site.
    pub const FORBIDDEN: i64 = 403;
    /// The order number exists with another method, amount or currency.
    pub const ORDER_CONFLICT: i64 = 409;
    /// `content-type` is not `application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: i64 = 415;
}

/// One envelope.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub code: i64,
    pub msg: String,
    pub data: Value,
}

impl Reply {
    pub(crate) fn ok(data: Value) -> Self {
        Reply {
            code: codes::OK,
            msg: "success".into(),
            data,
        }
    }

    pub(crate) fn reject(code: i64, msg: impl Into<String>) -> Self {
        Reply {
            code,
            msg: msg.into(),
            data: Value::Null,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        Json(serde_json::json!({ "code": self.code, "msg": self.msg, "data": self.data }))
            .into_response()
    }
}
