//! Who is calling: the signed headers, the signature over the raw body, the bound site and
//! the content type, checked in that order before the body is parsed.
//!
//! The sandbox, like the gateway, sets no timestamp window and does not remember nonces
//! (`docs/gateway.md#what-the-gateway-does-not-say-and-what-payworker-decided`).

use axum::http::HeaderMap;

use super::reply::{Reply, codes};
use super::settings::SandboxAccount;
use payworker_gateway::headers::{ACCOUNT_ID, ONCESTR, SIGNATURE, SITE, TIMESTAMP};
use payworker_gateway::{Oncestr, SignatureError, UnixTime, signing};

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, Reply> {
    let value = headers
        .get(name)
        .ok_or_else(|| Reply::reject(codes::UNAUTHENTICATED, format!("missing header `{name}`")))?;
    value.to_str().map_err(|_| {
        Reply::reject(
            codes::UNAUTHENTICATED,
            format!("header `{name}` is not text"),
        )
    })
}

fn same_site(bound: &str, given: &str) -> bool {
    bound
        .trim_end_matches('/')
        .eq_ignore_ascii_case(given.trim_end_matches('/'))
}

/// The calling account, or the envelope that refuses the request.
pub(crate) fn authenticate<'a>(
    accounts: &'a [SandboxAccount],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<&'a SandboxAccount, Reply> {
    let account_id = header(headers, ACCOUNT_ID)?;
    let account = accounts
        .iter()
        .find(|a| a.account_id == account_id)
        .ok_or_else(|| Reply::reject(codes::FORBIDDEN, "unknown account-id"))?;
    let unauthenticated = |msg: String| Reply::reject(codes::UNAUTHENTICATED, msg);
    let oncestr = header(headers, ONCESTR)?;
    Oncestr::parse(oncestr).map_err(|e| unauthenticated(e.to_string()))?;
    let timestamp = header(headers, TIMESTAMP)?;
    UnixTime::parse(timestamp).map_err(|e| unauthenticated(e.to_string()))?;
    let signature = header(headers, SIGNATURE)?;
    signing::verify(&account.key, body, oncestr, timestamp, signature).map_err(|e| match e {
        SignatureError::Malformed => unauthenticated(format!("signture: {e}")),
        SignatureError::Mismatch => unauthenticated(
            "signature does not match: sign the exact body bytes sent, then oncestr, timestamp \
             and the key"
                .into(),
        ),
    })?;
    let site = header(headers, SITE)?;
    if let Some(bound) = &account.site
        && !same_site(bound, site)
    {
        return Err(Reply::reject(
            codes::FORBIDDEN,
            "site is not the website bound to this account",
        ));
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Reply::reject(
            codes::UNSUPPORTED_MEDIA_TYPE,
            "content-type must be application/json",
        ));
    }
    Ok(account)
}
