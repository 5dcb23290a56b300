//! The last line of defence on every response: the configured secrets (each gateway
//! account's key, the console's token) masked wherever they appear.
//!
//! The queue crate masks card data in what a dead letter shows, but it is generic and cannot
//! know the application's keys; a key misplaced in a letter's detail or payload (a handler's
//! error quoting a request, a producer's mistake) would otherwise be shown as written.
//! Pages are small, so each body is read whole and searched.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret as _, SecretString};

use crate::config::Settings;

/// What replaces a secret.
const MASK: &str = "[REDACTED: secret]";

/// The secrets no response may carry.
pub struct Secrets(Vec<SecretString>);

impl Secrets {
    /// The accounts' keys and the console's token (inline or from its file).
    pub fn from_settings(settings: &Settings) -> Self {
        let mut all: Vec<SecretString> = settings
            .gateway
            .accounts
            .values()
            .filter_map(|a| a.resolved_key().or(a.key.as_ref()).cloned())
            .collect();
        all.extend(settings.console.token.clone());
        if let Some(path) = &settings.console.token_file
            && let Ok(text) = std::fs::read_to_string(path)
        {
            all.push(text.strip_suffix('\n').unwrap_or(&text).to_owned().into());
        }
        all.retain(|s| !s.expose_secret().is_empty());
        Secrets(all)
    }
}

/// Masks every secret in the response body.
pub async fn scrub(State(secrets): State<Arc<Secrets>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    if !secrets.0.iter().any(|s| text.contains(s.expose_secret())) {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let mut text = text.into_owned();
    for secret in &secrets.0 {
        text = text.replace(secret.expose_secret(), MASK);
    }
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}
