//! The repository stands alone: every relative Markdown link (and image) resolves to a file
//! inside it, an `#anchor` into a Markdown file names one of its headings, every `docs/…`
//! path cited in the Rust sources exists, and no file names a place outside the repository
//! or an issue tracker's numbers. A public clone has nothing else to follow.
//!
//! No network and no Redis: the files are read from the working tree (the tracked ones, by
//! `git ls-files`, or every file but `.git`, `target` and `node_modules` where git is not
//! there, as in a source archive).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's files, relative to its root.
fn files() -> Vec<PathBuf> {
    let tracked = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .ok()
        .filter(|out| out.status.success());
    let mut out: Vec<PathBuf> = match tracked {
        Some(out) => out
            .stdout
            .split(|b| *b == 0)
            .filter(|name| !name.is_empty())
            .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
            .collect(),
        None => {
            let mut all = Vec::new();
            walk(&root(), Path::new(""), &mut all);
            all
        }
    };
    // A tracked file deleted in the working tree is not there to read.
    out.retain(|f| root().join(f).is_file());
    out.sort();
    out
}

fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("readable directory")
        .flatten()
    {
        let name = entry.file_name();
        if [".git", "target", "node_modules"].contains(&name.to_string_lossy().as_ref()) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(&path, &rel.join(&name), out);
        } else {
            out.push(rel.join(&name));
        }
    }
}

/// The file's text, or `None` for a binary file.
fn text(file: &Path) -> Option<String> {
    let bytes = std::fs::read(root().join(file)).ok()?;
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

fn is_markdown(file: &Path) -> bool {
    file.extension().is_some_and(|e| e == "md")
}

/// `dir/target` with `.` and `..` resolved by name, or `None` if it climbs above the root.
fn resolve(dir: &Path, target: &str) -> Option<PathBuf> {
    let joined = dir.join(target);
    let mut parts: Vec<Component<'_>> = Vec::new();
    for part in joined.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(_) => parts.push(part),
            // An absolute path is never inside the repository.
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// The lines of a Markdown file outside fenced code blocks, inline code removed.
fn prose_lines(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (n, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => out.push((n + 1, strip_code_spans(line))),
            _ => {}
        }
    }
    out
}

fn strip_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].len() - rest[start..].trim_start_matches('`').len();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Link destinations on a line: inline links and images `[text](dest)`, and reference
/// definitions `[label]: dest`.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[')
        && let Some(close) = trimmed.find("]:")
        && !trimmed[..close].contains("](")
    {
        if let Some(dest) = trimmed[close + 2..].split_whitespace().next() {
            out.push(dest.trim_matches(['<', '>']).to_owned());
        }
        return out;
    }
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let dest = if let Some(angled) = after.strip_prefix('<') {
            angled.split('>').next().unwrap_or("")
        } else {
            let mut depth = 0usize;
            let end = after
                .char_indices()
                .find(|&(_, c)| match c {
                    '(' => {
                        depth += 1;
                        false
                    }
                    ')' if depth == 0 => true,
                    ')' => {
                        depth -= 1;
                        false
                    }
                    c => c.is_whitespace(),
                })
                .map_or(after.len(), |(i, _)| i);
            &after[..end]
        };
        out.push(dest.to_owned());
        rest = after;
    }
    out
}

/// A URL with a scheme (`https:`, `mailto:`): not a file in the repository.
fn has_scheme(dest: &str) -> bool {
    match dest.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        }
        None => false,
    }
}

/// The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped,
/// spaces as hyphens, `-1`, `-2`, … for repeats.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fence: Option<&str> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if let Some(m) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
            fence = match fence {
                None => Some(m),
                Some(open) if open == m => None,
                other => other,
            };
            continue;
        }
        if fence.is_some() || line.starts_with("    ") {
            continue;
        }
        let hashes = trimmed.len() - trimmed.trim_start_matches('#').len();
        if !(1..=6).contains(&hashes) || !trimmed[hashes..].starts_with(' ') {
            continue;
        }
        let title = trimmed[hashes..].trim().trim_end_matches('#').trim();
        let slug = slug(&link_text(title));
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// `[text](dest)` as its text, the way a heading renders.
fn link_text(title: &str) -> String {
    let mut out = String::new();
    let mut rest = title;
    while let Some(at) = rest.find("](") {
        let (before, after) = rest.split_at(at);
        out.push_str(&before.replacen('[', "", 1));
        rest = after[2..].split_once(')').map_or("", |(_, tail)| tail);
    }
    out.push_str(rest);
    out
}

fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// What is wrong with a link from `from` (a file relative to the root) to `dest`.
fn broken(from: &Path, dest: &str) -> Option<String> {
    if dest.is_empty() || has_scheme(dest) || dest.starts_with("//") {
        return None;
    }
    let (path, anchor) = dest.split_once('#').unwrap_or((dest, ""));
    let target = if path.is_empty() {
        from.to_path_buf()
    } else {
        let dir = from.parent().unwrap_or(Path::new(""));
        match resolve(dir, path) {
            Some(target) => target,
            None => return Some("leads outside the repository".into()),
        }
    };
    let on_disk = root().join(&target);
    if !on_disk.exists() {
        return Some(format!("`{}` does not exist", target.display()));
    }
    if !anchor.is_empty() && is_markdown(&target) {
        let markdown = std::fs::read_to_string(&on_disk).unwrap_or_default();
        if !anchors(&markdown).contains(anchor) {
            return Some(format!(
                "`{}` has no heading with the anchor `#{anchor}`",
                target.display()
            ));
        }
    }
    None
}

#[test]
fn every_relative_markdown_link_resolves_inside_the_repository() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in files().iter().filter(|f| is_markdown(f)) {
        let Some(markdown) = text(file) else { continue };
        for (line, prose) in prose_lines(&markdown) {
            for dest in link_targets(&prose) {
                checked += 1;
                if let Some(why) = broken(file, &dest) {
                    problems.push(format!("{}:{line}: ({dest}) {why}", file.display()));
                }
            }
        }
    }
    assert!(
        checked > 10,
        "only {checked} links found: is the parser blind?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// `docs/…` paths (with an optional `#anchor`) named anywhere in a Rust file.
fn cited_docs_paths(source: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let mut from = 0;
        while let Some(at) = line[from..].find("docs/").map(|i| i + from) {
            from = at + 5;
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || "/._-".contains(c)) {
                continue; // part of a longer path or URL
            }
            let cited: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/._#-".contains(*c))
                .collect();
            let cited = cited.trim_end_matches(['.', '#']);
            if cited.len() > "docs/".len() {
                out.push((n + 1, cited.to_owned()));
            }
        }
    }
    out
}

#[test]
fn every_docs_path_cited_in_the_sources_exists() {
    let mut problems = Vec::new();
    let mut checked = 0;
    let rust = files()
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"));
    for file in rust {
        let Some(source) = text(&file) else { continue };
        for (line, cited) in cited_docs_paths(&source) {
            checked += 1;
            if let Some(why) = broken(Path::new("cited"), &cited) {
                problems.push(format!("{}:{line}: {cited}: {why}", file.display()));
            }
        }
    }
    assert!(
        checked > 0,
        "no `docs/` path cited at all: is the scan blind?"
    );
    assert!(
        problems.is_empty(),
        "cited paths that do not resolve:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_file_points_outside_the_repository_or_at_issues() {
    // Spelled in pieces, so that this file does not name them itself.
    let outside = [
        ["..", "/shared"].concat(),
        ["/wo", "rk/"].concat(),
        ["GATE", "WAY.md"].concat(),
        ["seed", "/gateway-api"].concat(),
    ];
    let issue = ["iss", "ue"].concat();
    let mut problems = Vec::new();
    for file in files() {
        let Some(content) = text(&file) else { continue };
        for (n, line) in content.lines().enumerate() {
            let lower = line.to_lowercase();
            let named = outside.iter().find(|o| line.contains(o.as_str()));
            // The word, then a number with or without `#`: a tracker's number, which a clone
            // does not have.
            let numbered = lower.match_indices(&issue).any(|(at, _)| {
                let tail = &lower[at + issue.len()..];
                let number = tail.trim_start_matches([' ', '#']);
                number.len() < tail.len() && number.starts_with(|c: char| c.is_ascii_digit())
            });
            let queue_issue = lower.contains(&format!("the queue {issue}"));
            if let Some(o) = named {
                problems.push(format!("{}:{}: names `{o}`", file.display(), n + 1));
            } else if numbered || queue_issue {
                problems.push(format!("{}:{}: cites an {issue}", file.display(), n + 1));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_link_checker_tells_good_links_from_bad() {
    // `broken` and `anchors` on this repository's own README, so that a checker that finds
    // nothing wrong because it reads nothing is caught.
    let readme = Path::new("README.md");
    assert_eq!(broken(readme, "jobs/README.md"), None);
    assert_eq!(broken(readme, "https://example.com/x"), None);
    assert!(broken(readme, "jobs/NOPE.md").is_some());
    assert!(broken(readme, "../outside.md").is_some());
    assert!(broken(readme, "#no-such-heading").is_some());
    assert_eq!(broken(readme, "#quick-start"), None);
    assert_eq!(
        slug("Card data outside `card`"),
        "card-data-outside-card",
        "GitHub keeps letters, digits, `-` and `_`"
    );
    assert_eq!(
        link_targets("see [a](x.md#y) and ![b](<img one.png>), [c](f(1).md)"),
        ["x.md#y", "img one.png", "f(1).md"]
    );
    assert_eq!(
        prose_lines("a\n```\n[x](nope.md)\n```\n`[y](no.md)` [z](z.md)")
            .iter()
            .flat_map(|(_, l)| link_targets(l))
            .collect::<Vec<_>>(),
        ["z.md"]
    );
    assert_eq!(
        cited_docs_paths("//! see `docs/design/queue.md#1-decision`, https://x/docs/y."),
        [(1, "docs/design/queue.md#1-decision".to_owned())]
    );
}
