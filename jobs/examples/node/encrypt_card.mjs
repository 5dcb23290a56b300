#!/usr/bin/env node
// Encrypt a card for an S2S CreatePayment job's `card` field (the gateway's scheme).
//
// Usage:
//   echo '{"number":"4242424242424242","cvc":"123","exp_month":"12","exp_year":"28"}' \
//     | GATEWAY_KEY=<the account's 32-character key> node encrypt_card.mjs
//
// Prints base64(iv[12] || ciphertext || tag[16]): AES-256-GCM, the key's 32 UTF-8 bytes as
// the AES key, a random 12-byte IV, no associated data, standard base64 with padding. The
// plaintext is the compact JSON {"number","cvc","exp_month","exp_year"}, all strings.
// Node's built-in crypto only; no npm package needed.
import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export function encryptCard(key, card) {
  const keyBytes = Buffer.from(key, 'utf8');
  if (keyBytes.length !== 32) {
    throw new Error(`the gateway key must be exactly 32 bytes, got ${keyBytes.length}`);
  }
  for (const field of ['number', 'cvc', 'exp_month', 'exp_year']) {
    if (typeof card[field] !== 'string') throw new Error(`card field "${field}" must be a string`);
  }
  // Compact JSON, these four fields in this order.
  const plaintext = JSON.stringify({
    number: card.number,
    cvc: card.cvc,
    exp_month: card.exp_month,
    exp_year: card.exp_year,
  });
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyBytes, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, ciphertext, cipher.getAuthTag()]).toString('base64');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const key = process.env.GATEWAY_KEY;
    if (!key) throw new Error("set GATEWAY_KEY to the account's 32-character key");
    console.log(encryptCard(key, JSON.parse(readFileSync(0, 'utf8'))));
  } catch (err) {
    console.error(`encrypt_card.mjs: ${err.message}`);
    process.exit(1);
  }
}
