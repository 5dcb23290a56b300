//! One payment's traces drawn as an SVG waterfall, from the spans an OTLP receiver got: the
//! picture in the README's Operating section is this module's drawing of what the trace
//! test received from the real worker and ingress processes, so it shows what an operator's
//! tracing UI shows and cannot drift from it unnoticed (the test compares the committed
//! picture's span tree with the one it just drew).
//!
//! Each trace is a block: a row per span in tree order (children by start time), indented by
//! depth, its ids beside its name and a bar on the trace's own time axis. The span a trace
//! continues from outside (the producer's, the gateway's) is a dashed row without a bar: it
//! was never exported by payworker. A span link is written under the span that holds it.

use std::collections::HashMap;
use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::Span;

/// The attributes shown beside a span's name, in this order, when it has them.
const SHOWN: &[&str] = &[
    "queue", "attempt", "order_no", "payment_id", "account", "endpoint", "outcome",
];

/// One row of the drawing.
struct Row {
    name: String,
    depth: usize,
    /// Start and end in Unix nanoseconds; `None` for the span outside payworker.
    time: Option<(u64, u64)>,
    detail: String,
}

/// One trace to draw: its title, the rows of its span tree, and its time axis.
pub struct Block {
    title: String,
    rows: Vec<Row>,
}

impl Block {
    /// The spans of `trace_id` among `spans` as a tree under the span it continues from
    /// outside, named `outside` (e.g. "producer"). `links` names the spans a link points at
    /// (by span id) for the link's caption.
    pub fn of(
        title: &str,
        trace_id: &[u8],
        outside: &str,
        spans: &[Span],
        links: &HashMap<Vec<u8>, String>,
    ) -> Block {
        let ours: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace_id).collect();
        let ids: Vec<&[u8]> = ours.iter().map(|s| s.span_id.as_slice()).collect();
        let mut rows = vec![Row {
            name: outside.to_owned(),
            depth: 0,
            time: None,
            detail: format!("traceparent from outside payworker · trace {}", short(trace_id)),
        }];
        let roots: Vec<&Span> = ours
            .iter()
            .copied()
            .filter(|s| !ids.contains(&s.parent_span_id.as_slice()))
            .collect();
        for root in by_start(roots) {
            walk(root, 1, &ours, links, &mut rows);
        }
        Block {
            title: title.to_owned(),
            rows,
        }
    }
}

fn walk(
    span: &Span,
    depth: usize,
    spans: &[&Span],
    links: &HashMap<Vec<u8>, String>,
    rows: &mut Vec<Row>,
) {
    let mut detail: Vec<String> = SHOWN
        .iter()
        .filter_map(|key| {
            let value = span
                .attributes
                .iter()
                .find(|kv| kv.key == *key)?
                .value
                .as_ref()?
                .value
                .as_ref()?;
            let text = match value {
                any_value::Value::StringValue(s) => s.clone(),
                any_value::Value::IntValue(i) => i.to_string(),
                any_value::Value::BoolValue(b) => b.to_string(),
                _ => return None,
            };
            Some(format!("{key}={text}"))
        })
        .collect();
    for link in &span.links {
        let target = links.get(&link.span_id).map_or("a span", String::as_str);
        detail.push(format!(
            "link → {target} in trace {}",
            short(&link.trace_id)
        ));
    }
    rows.push(Row {
        name: span.name.clone(),
        depth,
        time: Some((span.start_time_unix_nano, span.end_time_unix_nano)),
        detail: detail.join(" · "),
    });
    let children: Vec<&Span> = spans
        .iter()
        .copied()
        .filter(|s| s.parent_span_id == span.span_id)
        .collect();
    for child in by_start(children) {
        walk(child, depth + 1, spans, links, rows);
    }
}

fn by_start(mut spans: Vec<&Span>) -> Vec<&Span> {
    spans.sort_by_key(|s| s.start_time_unix_nano);
    spans
}

/// The first eight hex digits of an id, as tracing UIs abbreviate them.
fn short(id: &[u8]) -> String {
    let hex = hex::encode(id);
    format!("{}…", &hex[..8.min(hex.len())])
}

const WIDTH: u32 = 1000;
const LABELS: u32 = 520;
const BARS: u32 = WIDTH - LABELS - 90;
const ROW: u32 = 36;
const HEADER: u32 = 30;

/// The blocks as one SVG document.
pub fn render(blocks: &[Block]) -> String {
    let height: u32 = blocks
        .iter()
        .map(|b| HEADER + ROW * u32::try_from(b.rows.len()).unwrap() + 16)
        .sum::<u32>()
        + 10;
    let mut svg = String::new();
    writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="ui-monospace, Menlo, Consolas, monospace">"##
    )
    .unwrap();
    writeln!(
        svg,
        r##"<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>"##
    )
    .unwrap();
    let mut y = 10;
    for block in blocks {
        let timed: Vec<(u64, u64)> = block.rows.iter().filter_map(|r| r.time).collect();
        let t0 = timed.iter().map(|t| t.0).min().unwrap_or(0);
        let t1 = timed.iter().map(|t| t.1).max().unwrap_or(t0 + 1).max(t0 + 1);
        writeln!(
            svg,
            r##"<text x="10" y="{}" font-size="14" font-weight="bold" fill="#222">{} ({})</text>"##,
            y + 18,
            escape(&block.title),
            millis(t1 - t0)
        )
        .unwrap();
        y += HEADER;
        for (i, row) in block.rows.iter().enumerate() {
            let shade = if i % 2 == 0 { "#f6f8fa" } else { "#ffffff" };
            writeln!(
                svg,
                r##"<g data-span="{}" data-depth="{}">"##,
                escape(&row.name),
                row.depth
            )
            .unwrap();
            writeln!(
                svg,
                r##"<rect x="0" y="{y}" width="{WIDTH}" height="{ROW}" fill="{shade}"/>"##
            )
            .unwrap();
            let x = 14 + 18 * u32::try_from(row.depth).unwrap();
            let colour = if row.time.is_some() { "#111" } else { "#777" };
            writeln!(
                svg,
                r##"<text x="{x}" y="{}" font-size="13" fill="{colour}">{}</text>"##,
                y + 15,
                escape(&row.name)
            )
            .unwrap();
            writeln!(
                svg,
                r##"<text x="{x}" y="{}" font-size="10" fill="#666">{}</text>"##,
                y + 29,
                escape(&row.detail)
            )
            .unwrap();
            match row.time {
                Some((start, end)) => {
                    let scale = |t: u64| {
                        #[allow(clippy::cast_precision_loss)]
                        let share = (t - t0) as f64 / (t1 - t0) as f64;
                        f64::from(LABELS) + share * f64::from(BARS)
                    };
                    let left = scale(start);
                    let width = (scale(end) - left).max(2.0);
                    writeln!(
                        svg,
                        r##"<rect x="{left:.1}" y="{}" width="{width:.1}" height="14" rx="2" fill="{}"/>"##,
                        y + 6,
                        BAR_COLOURS[row.depth % BAR_COLOURS.len()]
                    )
                    .unwrap();
                    writeln!(
                        svg,
                        r##"<text x="{:.1}" y="{}" font-size="10" fill="#333">{}</text>"##,
                        left + width + 4.0,
                        y + 17,
                        millis(end - start)
                    )
                    .unwrap();
                }
                None => writeln!(
                    svg,
                    r##"<rect x="{LABELS}" y="{}" width="{BARS}" height="14" rx="2" fill="none" stroke="#aaa" stroke-dasharray="4 3"/>"##,
                    y + 6
                )
                .unwrap(),
            }
            svg.push_str("</g>\n");
            y += ROW;
        }
        y += 16;
    }
    svg.push_str("</svg>\n");
    svg
}

const BAR_COLOURS: &[&str] = &["#8c8c8c", "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1"];

fn millis(nanos: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let ms = nanos as f64 / 1e6;
    format!("{ms:.1} ms")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The span tree a drawing shows: each row's span name and depth, in order. Two drawings
/// of the same flow have the same shape whatever their timings and ids.
pub fn shape(svg: &str) -> Vec<(String, usize)> {
    svg.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(r#"<g data-span=""#)?;
            let (name, rest) = rest.split_once('"')?;
            let depth = rest.strip_prefix(r#" data-depth=""#)?.split_once('"')?.0;
            Some((name.to_owned(), depth.parse().ok()?))
        })
        .collect()
}
