#!/usr/bin/env python3
"""Encrypt a card for an S2S CreatePayment job's `card` field (the gateway's scheme).

Usage:
    echo '{"number":"4242424242424242","cvc":"123","exp_month":"12","exp_year":"28"}' \
      | GATEWAY_KEY=<the account's 32-character key> encrypt_card.py

Prints base64(iv[12] || ciphertext || tag[16]): AES-256-GCM, the key's 32 UTF-8 bytes as
the AES key, a random 12-byte IV, no associated data, standard base64 with padding. The
plaintext is the compact JSON {"number","cvc","exp_month","exp_year"}, all strings.
Same result format as `payworker encrypt-card`. The card is never printed.

Needs `cryptography` (`pip install cryptography`).
"""

import base64
import json
import os
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CARD_FIELDS = ("number", "cvc", "exp_month", "exp_year")


def encrypt_card(key: str, card: dict) -> str:
    """Returns the `card` value of an S2S job."""
    key_bytes = key.encode("utf-8")
    if len(key_bytes) != 32:
        raise ValueError(f"the gateway key must be exactly 32 bytes, got {len(key_bytes)}")
    for field in CARD_FIELDS:
        if not isinstance(card.get(field), str):
            raise ValueError(f'card field "{field}" must be a string')
    # Compact JSON, these four fields in this order.
    plaintext = json.dumps(
        {field: card[field] for field in CARD_FIELDS}, separators=(",", ":")
    ).encode("utf-8")
    iv = os.urandom(12)
    sealed = AESGCM(key_bytes).encrypt(iv, plaintext, None)  # ciphertext || 16-byte tag
    return base64.b64encode(iv + sealed).decode("ascii")


def main():
    key = os.environ.get("GATEWAY_KEY")
    if not key:
        sys.exit("encrypt_card.py: set GATEWAY_KEY to the account's 32-character key")
    try:
        print(encrypt_card(key, json.load(sys.stdin)))
    except (ValueError, AttributeError) as e:
        sys.exit(f"encrypt_card.py: {e}")


if __name__ == "__main__":
    main()
