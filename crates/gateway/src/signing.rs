//! Request and notification signatures.
//!
//! `signture = UPPER(hex(HMAC-SHA256(key, raw_body + oncestr + timestamp + key)))`: the key is
//! both the MAC key and the last part of the message. Signing takes the exact bytes that go on
//! the wire; verification accepts either hex case and compares in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::GatewayKey;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature did not verify. Says nothing about the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not 64 hexadecimal characters.
    #[error("signature is not 64 hexadecimal characters")]
    Malformed,
    /// Well-formed, but not the signature of this body with this key.
    #[error("signature does not match")]
    Mismatch,
}

fn mac(key: &GatewayKey, body: &[u8], oncestr: &str, timestamp: &str) -> HmacSha256 {
    // HMAC accepts keys of any length; a GatewayKey is always 32 bytes.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key.bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.update(oncestr.as_bytes());
    mac.update(timestamp.as_bytes());
    mac.update(key.bytes());
    mac
}

/// Signs `body` (the exact bytes sent) with the request's `oncestr` and `timestamp` header
/// values; upper-case hex, as the gateway sends and expects.
pub fn sign(key: &GatewayKey, body: &[u8], oncestr: &str, timestamp: &str) -> String {
    hex::encode_upper(mac(key, body, oncestr, timestamp).finalize().into_bytes())
}

/// Verifies a `signture` header value over the exact bytes received, in constant time.
pub fn verify(
    key: &GatewayKey,
    body: &[u8],
    oncestr: &str,
    timestamp: &str,
    signature: &str,
) -> Result<(), SignatureError> {
    let mut given = [0u8; 32];
    hex::decode_to_slice(signature.as_bytes(), &mut given)
        .map_err(|_| SignatureError::Malformed)?;
    mac(key, body, oncestr, timestamp)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> GatewayKey {
        GatewayKey::from_text("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn round_trips_and_accepts_lower_case() {
        let sig = sign(&key(), b"{}", "n", "1");
        assert_eq!(sig, sig.to_uppercase());
        assert_eq!(verify(&key(), b"{}", "n", "1", &sig), Ok(()));
        assert_eq!(verify(&key(), b"{}", "n", "1", &sig.to_lowercase()), Ok(()));
    }

    #[test]
    fn malformed_and_mismatched_are_told_apart() {
        assert_eq!(
            verify(&key(), b"{}", "n", "1", "zz"),
            Err(SignatureError::Malformed)
        );
        let short = "A".repeat(62);
        assert_eq!(
            verify(&key(), b"{}", "n", "1", &short),
            Err(SignatureError::Malformed)
        );
        let other = "A".repeat(64);
        assert_eq!(
            verify(&key(), b"{}", "n", "1", &other),
            Err(SignatureError::Mismatch)
        );
    }
}
