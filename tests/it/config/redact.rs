//! No secret is ever printed: not by `Debug`, the redacted YAML, nor an error.

use figment::providers::Format;

use payworker::config::Yaml;

use super::{ACCOUNT_YAML, TEST_KEY, figment, file, from_yaml, valid};
use payworker::config::Settings;

#[test]
fn debug_never_shows_the_key() {
    let debug = format!("{:?}", valid());
    assert!(!debug.contains(TEST_KEY), "{debug}");
    assert!(debug.contains("REDACTED"));
}

#[test]
fn redacted_yaml_never_shows_the_key() {
    let yaml = valid().redacted_yaml();
    assert!(!yaml.contains(TEST_KEY), "{yaml}");
    assert!(
        yaml.contains("key: '[REDACTED]'") || yaml.contains("key: \"[REDACTED]\""),
        "{yaml}"
    );
}

#[test]
fn a_key_from_a_file_is_not_shown_either() {
    let key_file = file(TEST_KEY);
    let yaml = ACCOUNT_YAML.replace(
        &format!("key: {TEST_KEY}"),
        &format!("key_file: {}", key_file.path().display()),
    );
    let settings = from_yaml(&yaml).unwrap();
    assert!(!format!("{settings:?}").contains(TEST_KEY));
    let shown = settings.redacted_yaml();
    assert!(!shown.contains(TEST_KEY), "{shown}");
    assert!(shown.contains(&key_file.path().display().to_string()));
}

#[test]
fn a_redis_password_is_not_shown() {
    let mut settings = valid();
    settings.redis.url = "redis://worker:hunter2hunter2@redis.internal:6379/0".to_owned();
    let debug = format!("{settings:?}");
    let yaml = settings.redacted_yaml();
    for shown in [&debug, &yaml] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("redis://worker:REDACTED@redis.internal:6379/0"),
            "{shown}"
        );
    }
}

#[test]
fn errors_never_quote_the_key() {
    // Wrong length: the message gives the length, not the value.
    let short = &TEST_KEY[..31];
    let error = from_yaml(&ACCOUNT_YAML.replace(TEST_KEY, short)).unwrap_err();
    assert!(!format!("{error} {error:?}").contains(short));
    // Wrong type: serde would quote a number it did not expect.
    let digits = "12345678901234567890123456789012";
    for value in [digits, "1234567890123", "true", "[1234567890123]"] {
        let error = from_yaml(&ACCOUNT_YAML.replace(TEST_KEY, value)).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("1234567890123"), "{shown}");
        assert!(shown.contains("must be a string"), "{shown}");
    }
}

#[test]
fn the_default_redacted_yaml_reads_back_as_the_defaults() {
    let shown = Settings::default().redacted_yaml();
    let figment = figment("").merge(Yaml::string(&shown));
    let back: Settings = figment.extract().unwrap();
    assert_eq!(back.redacted_yaml(), shown);
}
