//! Small operator tools: `check-config` and `encrypt-card`.

use std::io::Read;

use anyhow::Context;
use clap::Args;

use crate::config::Settings;
use payworker_gateway::crypto;
use payworker_gateway::domain::CardDetails;

/// `payworker check-config`: validation already ran while loading; print what is in force.
pub fn check_config(settings: &Settings) -> anyhow::Result<()> {
    print!("{}", settings.redacted_yaml());
    eprintln!("configuration is valid");
    Ok(())
}

/// Arguments of `encrypt-card`.
#[derive(Debug, Args)]
pub struct EncryptCardArgs {
    /// The account whose key encrypts (default: the default or only account).
    #[arg(long)]
    pub account: Option<String>,
}

/// `payworker encrypt-card`: reads `{"number","cvc","exp_month","exp_year"}` on stdin and
/// prints the gateway's `base64(iv || ciphertext || tag)`. The card is never echoed.
pub fn encrypt_card(settings: &Settings, args: EncryptCardArgs) -> anyhow::Result<()> {
    let account = settings.account(args.account.as_deref())?;
    let key = account.credentials()?.key;
    let mut input = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the card from stdin")?;
    let card: CardDetails = serde_json::from_str(&input)
        .map_err(|e| anyhow::anyhow!("stdin is not a card object (line {}, column {}): expected {{\"number\",\"cvc\",\"exp_month\",\"exp_year\"}} as strings", e.line(), e.column()))?;
    let card = card.validated()?;
    println!(
        "{}",
        crypto::encrypt(&key, card.to_plaintext_json().as_bytes(), &mut rand::rng())
    );
    Ok(())
}
