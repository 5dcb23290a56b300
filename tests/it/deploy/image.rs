//! The image: hadolint lints the Dockerfile, and its stages are asserted.

use super::*;

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = read("deploy/Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                let (word, rest) = current.split_once(' ').unwrap_or((current.as_str(), ""));
                out.push((word.to_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_passes_hadolint_and_builds_a_stripped_non_root_image() {
    run(
        Command::new(tool("hadolint")).args(["--failure-threshold", "info", "deploy/Dockerfile"]),
        None,
    );
    let instructions = dockerfile_instructions();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (word, _))| word == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    let build = &instructions[stages[0]].1;
    assert!(
        build.ends_with(" AS build"),
        "the first stage is `FROM ... AS build`: {build}"
    );
    let build_steps = &instructions[stages[0]..stages[1]];
    let cargo = build_steps
        .iter()
        .find(|(word, rest)| word == "RUN" && rest.contains("cargo build"))
        .map(|(_, rest)| rest.as_str())
        .expect("the build stage runs cargo build");
    for part in [
        "--locked",
        "--release",
        "-p payworker",
        "--bin payworker",
        "strip",
    ] {
        assert!(cargo.contains(part), "the build step has `{part}`: {cargo}");
    }

    let last = &instructions[*stages.last().unwrap()..];
    assert!(
        !last[0].1.contains("rust:"),
        "the final stage is a minimal image, not the toolchain: {}",
        last[0].1
    );
    let users: Vec<&str> = last
        .iter()
        .filter(|(w, _)| w == "USER")
        .map(|(_, r)| r.as_str())
        .collect();
    let user = users.last().expect("the final stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|n| n != 0),
        "the final stage runs as a numeric non-root user (runAsNonRoot can check it): {user}"
    );
    let copies: Vec<&str> = last
        .iter()
        .filter(|(w, _)| w == "COPY" || w == "ADD")
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "the final stage copies one thing: {copies:?}"
    );
    let copy: Vec<&str> = copies[0].split_whitespace().collect();
    assert_eq!(copy[0], "--from=build", "copied from the build stage");
    assert!(
        copy[1].ends_with("/payworker") && copy.len() == 3,
        "only the binary is copied: {copy:?}"
    );

    // No secret baked in: no ENV or ARG names a key, password, token or secret.
    for (word, rest) in &instructions {
        if word == "ENV" || word == "ARG" {
            let upper = rest.to_uppercase();
            for bad in ["KEY", "PASSWORD", "SECRET", "TOKEN"] {
                assert!(!upper.contains(bad), "{word} {rest} may bake a secret in");
            }
        }
    }

    let ignore = read(".dockerignore");
    for must in [".git", "target", "**/node_modules", "**/*.key", "**/*.pem"] {
        assert!(
            ignore.lines().any(|l| l.trim() == must),
            ".dockerignore keeps `{must}` out of the build context"
        );
    }
}
