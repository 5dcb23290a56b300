//! Property tests: encryption round-trips any text; a signature survives no one-byte change.

use payworker_gateway::{GatewayKey, crypto, signing};
use proptest::prelude::*;
use rand::SeedableRng;

fn key_strategy() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ -~]{32}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encrypt_then_decrypt_round_trips(text in any::<String>(), k in key_strategy(), seed in any::<u64>()) {
        let key = GatewayKey::from_text(&k).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let sealed = crypto::encrypt(&key, text.as_bytes(), &mut rng);
        prop_assert_eq!(&*crypto::decrypt(&key, &sealed).unwrap(), text.as_bytes());
    }

    #[test]
    fn sign_then_verify_holds_and_any_one_byte_change_fails(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        nonce in "[A-Za-z0-9]{32}",
        ts in 1_000_000_000u64..9_999_999_999,
        k in key_strategy(),
        which in 0usize..4,
        at in any::<prop::sample::Index>(),
        delta in 1u8..=255,
    ) {
        let key = GatewayKey::from_text(&k).unwrap();
        let ts = ts.to_string();
        let sig = signing::sign(&key, &body, &nonce, &ts);
        prop_assert!(signing::verify(&key, &body, &nonce, &ts, &sig).is_ok());

        let flip = |bytes: &mut Vec<u8>| {
            let i = at.index(bytes.len());
            bytes[i] = bytes[i].wrapping_add(delta);
        };
        let (mut b, mut n, mut t, mut kk) =
            (body.clone(), nonce.clone().into_bytes(), ts.clone().into_bytes(), k.clone().into_bytes());
        match which {
            0 if !b.is_empty() => flip(&mut b),
            0 => b.push(delta),
            1 => flip(&mut n),
            2 => flip(&mut t),
            _ => flip(&mut kk),
        }
        // Nonce, timestamp and key are ASCII here; a changed byte may leave ASCII, so compare
        // as raw bytes through lossless conversions where possible.
        let n = String::from_utf8_lossy(&n).into_owned();
        let t = String::from_utf8_lossy(&t).into_owned();
        let changed_key = String::from_utf8(kk).ok().and_then(|s| GatewayKey::from_text(&s).ok());
        match changed_key {
            Some(other) => prop_assert!(signing::verify(&other, &b, &n, &t, &sig).is_err()),
            None => prop_assert!(which == 3), // a non-ASCII key is refused outright
        }
    }
}
