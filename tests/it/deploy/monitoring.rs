//! Monitoring: promtool accepts the alert rules; the dashboard's and the rules' queries
//! parse and name only listed metrics; a worker and an ingress export every listed metric,
//! with its listed labels, from their first scrape, and nothing unlisted; the dashboard's
//! panels have their own ids and cells.

use super::*;

#[test]
fn promtool_accepts_the_alert_rules() {
    let out = run(
        Command::new(tool("promtool")).args(["check", "rules", "deploy/prometheus/alerts.yaml"]),
        None,
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The metrics deploy/README.md lists: `| \`name\` | type | labels | ... |` rows, by name:
/// the type.
fn listed_metrics() -> BTreeMap<String, String> {
    listed_rows()
        .into_iter()
        .map(|(name, kind, _)| (name, kind))
        .collect()
}

/// deploy/README.md's metric rows: name, type, and the label names.
fn listed_rows() -> Vec<(String, String, std::collections::BTreeSet<String>)> {
    let rows: Vec<_> = read("deploy/README.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `payworker_"))
        .map(|l| {
            let (name, rest) = l.split_once('`').unwrap();
            let columns: Vec<&str> = rest.trim_start_matches(" |").split('|').collect();
            let labels = columns[1]
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            (
                format!("payworker_{name}"),
                columns[0].trim().to_owned(),
                labels,
            )
        })
        .collect();
    assert!(rows.len() >= 15, "deploy/README.md lists the metrics");
    rows
}

/// The `payworker_…` metric names a PromQL expression uses, a histogram's series
/// (`_bucket`, `_sum`, `_count`) as the histogram.
fn metrics_named(expr: &str, listed: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("payworker_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| listed.get(*b).is_some_and(|k| k == "histogram"))
            .map_or(name.clone(), str::to_owned);
        out.push(base);
    }
    out
}

#[test]
fn the_dashboard_and_the_alerts_name_only_listed_metrics_and_their_queries_parse() {
    let listed = listed_metrics();
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/payworker.json"))
        .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has a query", panel["title"]);
        for target in targets {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = variable["query"]["query"].as_str() {
            queries.push(q.to_owned());
        }
    }
    let alerts = yaml_documents(&read("deploy/prometheus/alerts.yaml")).remove(0);
    let mut alert_exprs = Vec::new();
    for group in alerts["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            alert_exprs.push(rule["expr"].as_str().unwrap().to_owned());
        }
    }
    let mut unknown = Vec::new();
    for expr in queries.iter().chain(&alert_exprs) {
        let named = metrics_named(expr, &listed);
        assert!(!named.is_empty(), "`{expr}` names a payworker metric");
        unknown.extend(named.into_iter().filter(|n| !listed.contains_key(n)));
    }
    assert!(
        unknown.is_empty(),
        "not in deploy/README.md's list: {unknown:?}"
    );

    // Every panel query parses: promtool checks them as recording rules, Grafana's
    // variables given plain values.
    let rules: Vec<Value> = queries
        .iter()
        .filter(|q| !q.starts_with("label_values("))
        .enumerate()
        .map(|(i, q)| {
            let expr = q.replace("$__rate_interval", "5m").replace("$queue", ".*");
            serde_json::json!({"record": format!("payworker:panel_{i}"), "expr": expr})
        })
        .collect();
    let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-rules.yaml");
    std::fs::write(&path, serde_norway::to_string(&file).unwrap()).unwrap();
    let out = run(
        Command::new(tool("promtool"))
            .arg("check")
            .arg("rules")
            .arg(&path),
        None,
    );
    assert!(
        out.contains(&format!("{} rules found", rules.len())),
        "{out}"
    );

    assert_eq!(
        metrics_named(
            "histogram_quantile(0.9, rate(payworker_job_duration_seconds_bucket[5m])) + payworker_nope_count",
            &listed
        ),
        ["payworker_job_duration_seconds", "payworker_nope_count"],
        "histogram series map to their histogram; anything else stays itself"
    );
}

/// Grafana keys panels by id and places them on a 24-column grid: a repeated id makes one
/// panel replace another on import, and overlapping cells draw one panel over another.
#[test]
fn the_dashboards_panels_have_their_own_ids_and_cells() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/payworker.json"))
        .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap().to_owned();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "panel {title:?} repeats id {}",
            panel["id"]
        );
        let at = |key: &str| panel["gridPos"][key].as_u64().unwrap();
        let (x, y, w, h) = (at("x"), at("y"), at("w"), at("h"));
        assert!(x + w <= 24, "panel {title:?} is wider than the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.clone()) {
                    panic!("panels {other:?} and {title:?} overlap at ({cx}, {cy})");
                }
            }
        }
    }
}

/// Every metric deploy/README.md lists is in a freshly started worker's and ingress's
/// `/metrics` before anything happened, with exactly the listed labels, and they export no
/// `payworker_` metric the list lacks. A counter that appeared only with its first
/// increment would hide that event from `increase()` (the alert on the first integrity
/// mismatch would never fire), and a panel or rule on an unexported name shows nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_worker_and_ingress_export_every_listed_metric_with_its_labels() {
    use std::collections::BTreeSet;
    let rows = listed_rows();
    // A lane with a target, so that the target's gauge has a series.
    let mut options = crate::notifications::Options::silent();
    options.lanes.insert(
        "interactive".into(),
        payworker::config::LaneSettings {
            weight: 8,
            target_pickup: Some(std::time::Duration::from_millis(250)),
        },
    );
    let product = crate::notifications::Product::start(options).await;
    let scrape = |addr: std::net::SocketAddr| async move {
        let response = reqwest::get(format!("http://{addr}/metrics")).await.ok()?;
        response.text().await.ok()
    };
    // The gauges are set by loops that read Redis (every second, every five seconds).
    let exported = crate::support::eventually(std::time::Duration::from_secs(20), || async {
        let text = scrape(product.health).await? + &scrape(product.ingress.addr).await?;
        let exported = exported_series(&text);
        rows.iter()
            .all(|(name, _, _)| exported.contains_key(name))
            .then_some(exported)
    })
    .await;
    for (name, kind, labels) in &rows {
        let mut seen = exported[name].clone();
        if kind.starts_with("histogram") {
            assert!(
                seen.remove("le"),
                "{name} is listed as a histogram: {seen:?}"
            );
        }
        assert_eq!(&seen, labels, "{name}'s labels");
    }
    let listed: BTreeSet<&String> = rows.iter().map(|(name, _, _)| name).collect();
    let unlisted: Vec<&String> = exported.keys().filter(|n| !listed.contains(n)).collect();
    assert!(unlisted.is_empty(), "not in deploy/README.md: {unlisted:?}");
    product.stop().await;
}

/// The `payworker_` metrics in a Prometheus text exposition and the label names their
/// series carry; a histogram's `_bucket`, `_sum` and `_count` series count as the histogram.
fn exported_series(text: &str) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let histograms: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" histogram"))
        .map(str::to_owned)
        .collect();
    let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("payworker_")) {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let mut name = &line[..end];
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && histograms.iter().any(|h| h == base)
            {
                name = base;
            }
        }
        let labels = out.entry(name.to_owned()).or_default();
        if let Some(inner) = line[end..]
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
        {
            for pair in inner.0.split("\",") {
                if let Some((key, _)) = pair.split_once('=') {
                    labels.insert(key.trim_start_matches(',').to_owned());
                }
            }
        }
    }
    out
}
