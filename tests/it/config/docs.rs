//! `worker.yaml` is the operator's reference: each field's `///` doc must appear, word for
//! word, as the comment beside its key there.

/// The sources whose struct fields are configuration keys.
const SOURCES: [&str; 7] = [
    include_str!("../../../src/config/settings.rs"),
    include_str!("../../../src/config/gateway.rs"),
    include_str!("../../../src/config/queues.rs"),
    include_str!("../../../src/config/ingress.rs"),
    include_str!("../../../src/config/payments.rs"),
    include_str!("../../../src/config/observability.rs"),
    include_str!("../../../src/config/console.rs"),
];

const WORKER_YAML: &str = include_str!("../../../worker.yaml");

/// Each `pub` field's doc, joined into one line, with the field's name.
fn field_docs(source: &str) -> Vec<(String, String)> {
    let mut docs = Vec::new();
    let mut doc: Vec<&str> = Vec::new();
    for line in source.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("///") {
            doc.push(text.trim());
        } else if line.starts_with("#[")
            || line.starts_with(')')
            || line.starts_with("default")
            || line.starts_with("deserialize_with")
            || line.starts_with("serialize_with")
        {
            // Attributes between the doc and the field.
        } else {
            if let Some((field, _)) = line.strip_prefix("pub ").and_then(|l| l.split_once(':'))
                && !doc.is_empty()
                && !field.contains(' ')
            {
                docs.push((field.to_owned(), doc.join(" ")));
            }
            doc.clear();
        }
    }
    docs
}

/// All comment text in `worker.yaml`, joined into one line.
fn yaml_comments() -> String {
    let words: Vec<&str> = WORKER_YAML
        .lines()
        .filter_map(|line| line.trim().strip_prefix('#'))
        .flat_map(str::split_whitespace)
        .collect();
    words.join(" ")
}

#[test]
fn every_field_doc_is_the_comment_in_worker_yaml() {
    let comments = yaml_comments();
    let docs: Vec<_> = SOURCES.iter().flat_map(|s| field_docs(s)).collect();
    assert!(
        docs.len() >= 30,
        "found only {} documented fields",
        docs.len()
    );
    for (field, doc) in docs {
        let doc = doc.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            comments.contains(&doc),
            "worker.yaml lacks the doc of `{field}`: {doc}"
        );
        assert!(
            WORKER_YAML.contains(&format!("{field}:")),
            "worker.yaml lacks `{field}`"
        );
    }
}
