//! W3C trace context between processes: a job's `trace` (`jobs::Trace`) and HTTP headers
//! in, a span's context out.
//!
//! A producer may put `trace.traceparent` in a job; the job's span continues that trace
//! (or starts a new root without it). What leaves the worker (the gateway request's
//! `traceparent` header, a result event's `trace`, a `ProcessNotification` the ingress
//! queues) carries the context of the span it leaves from, so whoever reads it continues
//! the same trace.
//!
//! Everything goes through OpenTelemetry's global propagator, which `crate::telemetry`
//! sets to the W3C one only when traces are exported. Without it these functions change
//! nothing and yield no context, and callers fall back to what the job carried: a
//! producer's trace context still reaches its result events when this worker exports
//! nothing.

use std::collections::HashMap;

use opentelemetry::trace::TraceContextExt as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::jobs::Trace;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Makes `span` a child of `trace` when there is one (before the span is first entered).
pub fn continue_from(span: &tracing::Span, trace: Option<&Trace>) {
    if let Some(trace) = trace {
        let parent = extract(&carrier_of(trace));
        if parent.span().span_context().is_valid()
            && let Err(error) = span.set_parent(parent)
        {
            tracing::debug!(%error, "the span could not continue the job's trace");
        }
    }
}

/// The `traceparent` (and `tracestate`) among `headers`, if any.
pub fn from_headers(headers: &axum::http::HeaderMap) -> Option<Trace> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    Some(Trace {
        traceparent: text(TRACEPARENT)?.to_owned(),
        tracestate: text(TRACESTATE).map(str::to_owned),
    })
}

/// Links `span` to `trace`: the span stays in its own trace and points at the other one.
pub fn link_to(span: &tracing::Span, trace: &Trace) {
    let other = extract(&carrier_of(trace));
    let context = other.span().span_context().clone();
    if context.is_valid() {
        span.add_link(context);
    }
}

/// The trace context of `span`, to hand on; `None` when traces are not exported.
pub fn of(span: &tracing::Span) -> Option<Trace> {
    let mut carrier = HashMap::new();
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    let traceparent = carrier.remove(TRACEPARENT)?;
    Some(Trace {
        traceparent,
        tracestate: carrier.remove(TRACESTATE).filter(|s| !s.is_empty()),
    })
}

/// The headers that carry the current span's trace context on an outgoing request.
pub fn headers_of_current() -> Vec<(&'static str, String)> {
    let Some(trace) = of(&tracing::Span::current()) else {
        return Vec::new();
    };
    let mut headers = vec![(TRACEPARENT, trace.traceparent)];
    if let Some(state) = trace.tracestate {
        headers.push((TRACESTATE, state));
    }
    headers
}

fn carrier_of(trace: &Trace) -> HashMap<String, String> {
    let mut carrier = HashMap::from([(TRACEPARENT.to_owned(), trace.traceparent.clone())]);
    if let Some(state) = &trace.tracestate {
        carrier.insert(TRACESTATE.to_owned(), state.clone());
    }
    carrier
}

fn extract(carrier: &HashMap<String, String>) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier))
}
