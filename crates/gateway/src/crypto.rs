//! Card encryption: `base64(iv[12] || ciphertext || tag[16])` with AES-256-GCM.
//!
//! The key is the gateway key's 32 bytes used directly; there is no associated data. A fresh
//! random IV is drawn for every encryption (reusing one under GCM leaks the key stream), so
//! the public API takes an RNG and only tests pin the IV. Output uses the standard base64
//! alphabet with padding; input may use either alphabet, padded or not.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use rand::{CryptoRng, Rng};
use zeroize::Zeroizing;

use super::GatewayKey;

const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a ciphertext could not be decrypted. Never contains plaintext or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Not base64 in either alphabet.
    #[error("encrypted card is not base64")]
    NotBase64,
    /// Shorter than an IV and a tag.
    #[error("encrypted card is {got} bytes, shorter than the {min}-byte IV and tag")]
    TooShort {
        /// Decoded length.
        got: usize,
        /// Minimum length.
        min: usize,
    },
    /// The tag did not verify: wrong key, or the ciphertext was altered.
    #[error("encrypted card does not authenticate (wrong key or altered ciphertext)")]
    Authentication,
}

fn cipher(key: &GatewayKey) -> Aes256Gcm {
    // A GatewayKey is exactly 32 bytes: the AES-256 key length.
    Aes256Gcm::new_from_slice(key.bytes()).expect("gateway key is 32 bytes")
}

/// Encrypts with a fresh random IV from `rng`.
pub fn encrypt<R: Rng + CryptoRng>(key: &GatewayKey, plaintext: &[u8], rng: &mut R) -> String {
    let mut iv = [0u8; IV_LEN];
    rng.fill_bytes(&mut iv);
    encrypt_with_iv(key, plaintext, iv)
}

/// Encrypts with the given IV. Only for known-answer tests: never reuse an IV.
pub fn encrypt_with_iv(key: &GatewayKey, plaintext: &[u8], iv: [u8; IV_LEN]) -> String {
    let sealed = cipher(key)
        .encrypt(Nonce::from_slice(&iv), plaintext)
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(IV_LEN + sealed.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&sealed);
    STANDARD.encode(out)
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decrypts a card; the plaintext is wiped when dropped.
pub fn decrypt(key: &GatewayKey, encoded: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let raw = STANDARD_LENIENT
        .decode(encoded.trim())
        .or_else(|_| URL_SAFE_LENIENT.decode(encoded.trim()))
        .map_err(|_| CryptoError::NotBase64)?;
    if raw.len() < IV_LEN + TAG_LEN {
        return Err(CryptoError::TooShort {
            got: raw.len(),
            min: IV_LEN + TAG_LEN,
        });
    }
    let (iv, sealed) = raw.split_at(IV_LEN);
    cipher(key)
        .decrypt(Nonce::from_slice(iv), sealed)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> GatewayKey {
        GatewayKey::from_text("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn fresh_iv_every_time() {
        let mut rng = rand::rng();
        let a = encrypt(&key(), b"card", &mut rng);
        let b = encrypt(&key(), b"card", &mut rng);
        assert_ne!(a, b);
        assert_eq!(&*decrypt(&key(), &a).unwrap(), b"card");
    }

    #[test]
    fn url_safe_and_unpadded_input_accepted() {
        let std = encrypt_with_iv(&key(), b"\xff\xfe card", [0xfb; 12]);
        let url = std.replace('+', "-").replace('/', "_");
        let unpadded = url.trim_end_matches('=');
        assert_eq!(&*decrypt(&key(), unpadded).unwrap(), b"\xff\xfe card");
    }
}
