//! Where a setting's value came from, so that an error names what to fix: the file and line,
//! or the `PAYWORKER_*` variable. A key no layer sets is called missing, with both ways to
//! set it, instead of being blamed on whichever layer figment read last.

use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::{Figment, Metadata, Profile, Source};

use super::load::{ENV_PREFIX, ENV_SOURCE};
use super::{ConfigProblem, yaml};

/// One problem per error figment reported while extracting the tree from `figment`.
pub(super) fn load_problems(figment: &Figment, error: figment::Error) -> Vec<ConfigProblem> {
    let file = config_file(figment);
    error
        .into_iter()
        .map(|e| {
            let mut keys = e.path.clone();
            match &e.kind {
                Kind::MissingField(field) => {
                    keys.push(field.to_string());
                    let place = file
                        .as_deref()
                        .map_or_else(|| "the config file".to_owned(), |f| f.display().to_string());
                    ConfigProblem::new(
                        keys.join("."),
                        format!("missing: set it in {place} or as {}", env_var(&keys)),
                    )
                }
                // Not about one key (unreadable file, bad YAML, a key written twice): figment's
                // own words name the source.
                _ if keys.is_empty() => ConfigProblem::new("", e.to_string()),
                // The path ends with the key itself (an unknown one included).
                kind => {
                    let path = keys.join(".");
                    let origin = origin(figment, &path)
                        .or_else(|| e.metadata.as_ref().and_then(|m| describe(m, &path)));
                    ConfigProblem::new(path, kind.to_string()).with_origin(origin)
                }
            }
        })
        .collect()
}

/// Where the value at the dotted `path` came from, if from the file or a variable (a
/// default needs no pointing at).
pub(super) fn origin(figment: &Figment, path: &str) -> Option<String> {
    describe(figment.find_metadata(path)?, path)
}

fn describe(metadata: &Metadata, path: &str) -> Option<String> {
    match metadata.source.as_ref()? {
        Source::File(file) => {
            let line = std::fs::read_to_string(file)
                .ok()
                .and_then(|text| yaml::line_of(&text, path));
            Some(match line {
                Some(line) => format!("in {}:{line}", file.display()),
                None => format!("in {}", file.display()),
            })
        }
        Source::Custom(name) if name == ENV_SOURCE => {
            let keys: Vec<&str> = path.split('.').collect();
            Some(format!(
                "from {}",
                metadata.interpolate(&Profile::Default, &keys)
            ))
        }
        _ => None,
    }
}

/// The configuration file among `figment`'s layers, if one was read.
fn config_file(figment: &Figment) -> Option<PathBuf> {
    figment
        .metadata()
        .filter_map(|m| m.source.as_ref()?.file_path())
        .map(Path::to_path_buf)
        .next()
}

/// The variable that sets the key at `keys`.
fn env_var(keys: &[String]) -> String {
    format!("{ENV_PREFIX}{}", keys.join("__").to_ascii_uppercase())
}
