//! Who is asking, and whether a state-changing request really comes from the console's own
//! pages.
//!
//! - Bound to loopback with no token: everyone who connects is on the machine; "who" is
//!   `loopback`.
//! - Otherwise every request carries the token: `Authorization: Bearer <token>` (scripts) or
//!   the `payworker_console` cookie the login form sets (HttpOnly, SameSite=Strict, so no
//!   other site's page can send it); "who" is `console.operator`. Without it: 401 and the
//!   login form. A non-loopback bind with no token does not start.
//! - Every POST (every change) must come from a page of this console: its `Origin` (or,
//!   failing that, `Referer`) names this host, and its form carries the CSRF token, a hash
//!   of a secret drawn at start and the operator's name, which only a page of this console
//!   shows. Either missing or wrong: 403, nothing done.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{Console, page};
use crate::config::ConsoleSettings;

/// The login cookie's name.
const COOKIE: &str = "payworker_console";

/// How the console knows its operator.
pub struct Access {
    /// The token's SHA-256 (compared as digests, so not byte by byte on the token), or
    /// `None` on loopback with no token.
    token: Option<[u8; 32]>,
    /// Who holds the token.
    operator: String,
    /// Drawn at start: CSRF tokens are not guessable and die with the process.
    secret: [u8; 32],
}

/// Who made a request, for the pages and the action log.
#[derive(Clone, Debug)]
pub struct Who(pub String);

impl Access {
    /// From the `console` section, for a listener bound to `bound`.
    ///
    /// # Errors
    ///
    /// No token (neither `token` nor `token_file`) while bound to a non-loopback address,
    /// or an unreadable or empty token file.
    pub fn from_settings(settings: &ConsoleSettings, bound: SocketAddr) -> anyhow::Result<Self> {
        let token = match (&settings.token, &settings.token_file) {
            (Some(token), _) => Some(token.expose_secret().to_owned()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading console.token_file {}", path.display()))?;
                Some(text.strip_suffix('\n').unwrap_or(&text).to_owned())
            }
            (None, None) => None,
        };
        anyhow::ensure!(
            token.as_deref() != Some(""),
            "console.token (or its token_file) is empty"
        );
        anyhow::ensure!(
            token.is_some() || bound.ip().is_loopback(),
            "the console is bound to {bound}, not loopback: set PAYWORKER_CONSOLE__TOKEN or \
             console.token_file so that only operators get in (refusing to start)"
        );
        Ok(Access {
            token: token.map(|t| digest(t.as_bytes())),
            operator: settings.operator.clone(),
            secret: rand::random(),
        })
    }

    /// Who sent `headers`, or `None` if they lack the token.
    fn who(&self, headers: &HeaderMap) -> Option<Who> {
        let Some(token) = &self.token else {
            return Some(Who("loopback".to_owned()));
        };
        let given = bearer(headers).or_else(|| cookie(headers))?;
        (digest(given.as_bytes()) == *token).then(|| Who(self.operator.clone()))
    }

    /// The CSRF token the pages put in their forms for `who`.
    pub fn csrf(&self, who: &Who) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(who.0.as_bytes());
        hex::encode(h.finalize())
    }

    /// Whether a form's CSRF field is the one this console gave `who`.
    pub fn csrf_ok(&self, who: &Who, given: &str) -> bool {
        digest(given.as_bytes()) == digest(self.csrf(who).as_bytes())
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Whether a POST's `Origin` (else `Referer`) is this host. A request with neither is
/// refused: every browser sends one of them on a form's POST.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| url::Url::parse(v).ok());
    from.is_some_and(|url| {
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return false,
        };
        authority.eq_ignore_ascii_case(host)
    })
}

/// The middleware in front of every route: the login page and the style sheet are open;
/// everything else needs the token; every POST must come from this console's pages.
pub async fn guard(State(console): State<Console>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let open = path == "/login" || path == "/style.css";
    if request.method() == Method::POST && !same_origin(request.headers()) {
        tracing::warn!(path, "console: cross-site POST refused (Origin/Referer)");
        return (
            StatusCode::FORBIDDEN,
            "refused: not from this console's pages",
        )
            .into_response();
    }
    match console.access.who(request.headers()) {
        Some(who) => {
            request.extensions_mut().insert(who);
            next.run(request).await
        }
        None if open => next.run(request).await,
        None => (StatusCode::UNAUTHORIZED, login_html(false)).into_response(),
    }
}

fn login_html(failed: bool) -> maud::Markup {
    page::bare(
        "Log in",
        html! {
            h1 { "payworker console" }
            @if failed { p.error { "That token is not the console's." } }
            form method="post" action="/login" {
                label { "Token " input type="password" name="token" autocomplete="current-password"; }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// `GET /login`.
pub async fn login_page() -> maud::Markup {
    login_html(false)
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// `POST /login`: the right token sets the cookie and goes to the queues.
pub async fn login(
    State(console): State<Console>,
    who: Option<Extension<Who>>,
    Form(form): Form<LoginForm>,
) -> Response {
    if who.is_some() && console.access.token.is_none() {
        return Redirect::to("/queues").into_response();
    }
    let ok = console
        .access
        .token
        .is_some_and(|t| digest(form.token.as_bytes()) == t);
    if !ok {
        tracing::warn!("console: login refused");
        return (StatusCode::UNAUTHORIZED, login_html(true)).into_response();
    }
    tracing::info!(who = %console.access.operator, "console: logged in");
    let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", form.token);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/queues")).into_response()
}
