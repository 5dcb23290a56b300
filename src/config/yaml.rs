//! The configuration file as a figment provider that refuses a key written twice, and YAML
//! for figment parsed by the project's one YAML parser.
//!
//! A YAML mapping read into a map silently keeps the last value of a key written twice: a
//! second `ingress:` block at the end of `worker.yaml` would replace the first one whole,
//! listen address and all, without a word. Before handing the file to figment, [`YamlFile`]
//! reads it once with `serde_norway` into a shape that only tracks keys, and stops at the
//! first key seen twice in one mapping, naming the file, the line of the second occurrence
//! and the key's dotted path. Values are never quoted. A file that is not valid YAML is
//! left to figment, which reports it as before.
//!
//! [`Yaml`] is figment's format over `serde_norway`, the parser that also prints the
//! redacted configuration: one YAML stack (figment's own YAML feature would add the
//! deprecated `serde_yaml`).
//!
//! The same walk finds the line of any key, so that an error about a value in the file
//! points at the line to edit.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use figment::providers::Format;
use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor,
};

/// YAML for figment, parsed by `serde_norway`: the one YAML parser of the project (figment's
/// own YAML provider would bring the deprecated `serde_yaml` beside it). Use it as figment's
/// `Yaml` (`Yaml::file_exact`, `Yaml::string`).
pub struct Yaml;

impl Format for Yaml {
    type Error = serde_norway::Error;

    const NAME: &'static str = "YAML";

    fn from_str<T: DeserializeOwned>(string: &str) -> Result<T, Self::Error> {
        serde_norway::from_str(string)
    }
}

/// A YAML configuration file, checked for duplicate keys before figment reads it.
pub(super) struct YamlFile {
    path: PathBuf,
}

impl YamlFile {
    /// The file at `path` (which must exist: a missing file is an error, as with
    /// `Yaml::file_exact`).
    pub(super) fn new(path: impl Into<PathBuf>) -> YamlFile {
        YamlFile { path: path.into() }
    }

    fn figment_provider(&self) -> figment::providers::Data<Yaml> {
        Yaml::file_exact(&self.path)
    }
}

impl Provider for YamlFile {
    fn metadata(&self) -> Metadata {
        self.figment_provider().metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        // Unreadable: figment says so in its own words.
        if let Ok(text) = std::fs::read_to_string(&self.path)
            && let Some(duplicate) = first_duplicate(&text)
        {
            return Err(figment::Error::from(format!(
                "{}:{}: `{}` is written twice in one mapping (the second would silently \
                 replace the first)",
                self.path.display(),
                duplicate.line,
                duplicate.key
            )));
        }
        self.figment_provider().data()
    }
}

/// A key found a second time in one mapping.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Duplicate {
    /// The key's dotted path from the top of the file, e.g. `gateway.accounts.main.site`.
    pub key: String,
    /// The 1-based line of its second occurrence.
    pub line: usize,
}

/// The first key written twice in one mapping of `text`, if any. `None` too for text that
/// is not YAML at all (figment reports that).
pub(super) fn first_duplicate(text: &str) -> Option<Duplicate> {
    let (key, line) = walk(text, None)?;
    Some(Duplicate { key, line })
}

/// The 1-based line where the key at the dotted `path` is written in `text`, so that an
/// error about its value can point at it; `None` if it is not written there (or a key
/// written twice comes first).
pub(super) fn line_of(text: &str, path: &str) -> Option<usize> {
    let (found, line) = walk(text, Some(path))?;
    (found == path).then_some(line)
}

/// Walks the keys of `text` until the first key written twice or the key at `target`:
/// that key's dotted path and line.
fn walk(text: &str, target: Option<&str>) -> Option<(String, usize)> {
    let found = RefCell::new(None);
    let deserializer = serde_norway::Deserializer::from_str(text);
    // Several documents: figment reads one; so does this check.
    let error = Keys {
        path: "",
        target,
        found: &found,
    }
    .deserialize(deserializer)
    .err()?;
    let key = found.into_inner()?;
    let line = error.location().map_or(0, |l| l.line());
    Some((key, line))
}

/// A node of the document, walked for its keys only. `found` receives the dotted path of the
/// first duplicate (or of `target`), whose error (raised while reading that key) carries
/// its line.
#[derive(Clone, Copy)]
struct Keys<'a> {
    /// Where this node is, dotted; empty at the top.
    path: &'a str,
    /// A key whose line is wanted, dotted.
    target: Option<&'a str>,
    found: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Keys<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Keys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(Key {
            parent: self,
            seen: &mut seen,
        })? {
            let path = match key {
                Some(name) if self.path.is_empty() => name,
                Some(name) => format!("{}.{name}", self.path),
                None => self.path.to_owned(),
            };
            map.next_value_seed(Keys {
                path: &path,
                target: self.target,
                found: self.found,
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let path = format!("{}[{i}]", self.path);
            let item = Keys {
                path: &path,
                target: self.target,
                found: self.found,
            };
            if seq.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// One key of a mapping: its text, refused if the mapping had it already. The refusal is
/// raised while the key itself is read, so the parser's error carries the key's line.
struct Key<'a, 'p> {
    parent: Keys<'p>,
    seen: &'a mut HashSet<String>,
}

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    /// The key's text; `None` for a key that is itself a mapping or a sequence.
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.name(v.to_owned())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        self.name(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.name(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.name(v.to_string())
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        self.name(v.to_string())
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        self.name(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.name(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.name("~".to_owned())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.name("~".to_owned())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.parent.visit_map(map).map(|()| None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.parent.visit_seq(seq).map(|()| None)
    }
}

impl Key<'_, '_> {
    fn name<E: de::Error>(self, name: String) -> Result<Option<String>, E> {
        let path = if self.parent.path.is_empty() {
            name.clone()
        } else {
            format!("{}.{name}", self.parent.path)
        };
        if !self.seen.insert(name.clone()) {
            *self.parent.found.borrow_mut() = Some(path);
            return Err(E::custom("a key written twice"));
        }
        if self.parent.target == Some(path.as_str()) {
            *self.parent.found.borrow_mut() = Some(path);
            return Err(E::custom("the key looked for"));
        }
        Ok(Some(name))
    }
}
