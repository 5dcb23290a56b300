//! The last line of defence on every response: the configured secrets (each gateway
//! account's key, the console's token) masked wherever they appear.
//!
//! The queue crate masks card data in what a dead letter shows, but it is generic and cannot
//! know the application's keys; a key misplaced in a letter's detail or payload (a handler's
//! error quoting a request, a producer's mistake) would otherwise be shown as written.
//! Pages are small, so each body is read whole and searched. The mask is the configuration's
//! [`Secrets`], which the command line's output uses too.

use std::sync::Arc;

use crate::config::Secrets;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Masks every secret in the response body.
pub async fn scrub(State(secrets): State<Arc<Secrets>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    if !secrets.found_in(&text) {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let masked = secrets.mask(&text).into_owned();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(masked))
}
