//! The maps stay true: the README's architecture tree names every source file of the
//! workspace and nothing that is gone, and each crate's (and each module directory's)
//! top-level doc names every module it declares. A file added without a line on the map
//! fails here, so a newcomer can trust the map.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, relative to the workspace root.
fn rust_files(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root()).unwrap();
            out.insert(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The source files of the workspace: `src/` and every `crates/*/src/`.
fn source_files() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    rust_files(&root().join("src"), &mut files);
    for krate in std::fs::read_dir(root().join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    files
}

/// The paths the README's architecture tree names: each line's first word, a directory
/// when it ends in `/`, nested by two spaces of indentation.
fn mapped_paths() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("\n## Architecture\n")
        .nth(1)
        .expect("README has an Architecture section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let tree = section
        .split("```text\n")
        .skip(1)
        .filter_map(|t| t.split("\n```").next())
        .find(|t| t.starts_with("Cargo.toml"))
        .expect("the Architecture section has the file tree (a text block from Cargo.toml)");
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut paths = BTreeSet::new();
    for line in tree.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        if indent % 2 != 0 || !(name.ends_with('/') || name.contains('.')) {
            continue; // a continuation of the previous line's description
        }
        if name.contains('*') {
            continue; // a pattern (`crates/*/tests/`) names a kind of file, not one
        }
        while stack.last().is_some_and(|(level, _)| *level >= indent) {
            stack.pop();
        }
        let parent = stack.last().map(|(_, p)| p.as_str()).unwrap_or("");
        let path = format!("{parent}{name}");
        if name.ends_with('/') {
            stack.push((indent, path.clone()));
        }
        paths.insert(path);
    }
    paths
}

#[test]
fn the_readme_map_names_every_source_file_and_no_missing_one() {
    let mapped = mapped_paths();
    let missing: Vec<String> = source_files()
        .into_iter()
        .filter(|f| !mapped.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "README's architecture tree does not list {missing:?}"
    );
    let gone: Vec<&String> = mapped
        .iter()
        .filter(|p| !root().join(p.trim_end_matches('/')).exists())
        .collect();
    assert!(
        gone.is_empty(),
        "README's architecture tree lists {gone:?}, which do not exist"
    );
}

/// The `mod` declarations of a crate root or `mod.rs`, and its `//!` doc.
fn modules_and_doc(file: &Path) -> (Vec<String>, String) {
    let text = std::fs::read_to_string(file).unwrap();
    let doc: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let modules = text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("pub ").or(Some(l))?;
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .filter(|m| m != "tests")
        .collect();
    (modules, doc)
}

#[test]
fn every_crate_and_module_doc_names_its_modules() {
    let mut roots: Vec<PathBuf> = source_files()
        .into_iter()
        .filter(|f| f.ends_with("/lib.rs") || f.ends_with("/main.rs") || f.ends_with("/mod.rs"))
        .map(|f| root().join(f))
        .collect();
    roots.sort();
    let mut unnamed = Vec::new();
    for file in roots {
        let (modules, doc) = modules_and_doc(&file);
        for module in modules {
            if !doc.contains(&format!("`{module}`"))
                && !doc.contains(&format!("{module}/"))
                && !doc.contains(&format!("`{module}.rs`"))
                && !doc
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(module.as_str()))
            {
                unnamed.push(format!(
                    "{}: {module}",
                    file.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        unnamed.is_empty(),
        "modules missing from their parent's doc: {unnamed:#?}"
    );
}

#[test]
fn no_two_files_of_one_crate_share_a_basename() {
    // Two `notify.rs` in one crate with different jobs made readers open the wrong one.
    let mut seen: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for file in source_files() {
        let krate = if file.starts_with("crates/") {
            file.split('/').take(2).collect::<Vec<_>>().join("/")
        } else {
            "payworker".to_owned()
        };
        let base = file.rsplit('/').next().unwrap().to_owned();
        if !["mod.rs", "lib.rs", "main.rs"].contains(&base.as_str()) {
            seen.entry((krate, base)).or_default().push(file);
        }
    }
    let repeated: Vec<&Vec<String>> = seen.values().filter(|files| files.len() > 1).collect();
    assert!(
        repeated.is_empty(),
        "one basename, several files: {repeated:?}"
    );
}
