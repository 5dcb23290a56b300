<?php
// Encrypt a card for an S2S CreatePayment job's `card` field (the gateway's scheme).
//
// Usage:
//   echo '{"number":"4242424242424242","cvc":"123","exp_month":"12","exp_year":"28"}' \
//     | GATEWAY_KEY=<the account's 32-character key> php encrypt_card.php
//
// Prints base64(iv[12] || ciphertext || tag[16]): AES-256-GCM, the key's 32 UTF-8 bytes as
// the AES key, a random 12-byte IV, no associated data, standard base64 with padding. The
// plaintext is the compact JSON {"number","cvc","exp_month","exp_year"}, all strings.
// Needs only PHP's openssl extension (built into Debian's php-cli).

declare(strict_types=1);

function encrypt_card(string $key, array $card): string
{
    if (strlen($key) !== 32) {
        throw new InvalidArgumentException(
            'the gateway key must be exactly 32 bytes, got ' . strlen($key)
        );
    }
    $fields = [];
    foreach (['number', 'cvc', 'exp_month', 'exp_year'] as $field) {
        if (!is_string($card[$field] ?? null)) {
            throw new InvalidArgumentException("card field \"$field\" must be a string");
        }
        $fields[$field] = $card[$field];
    }
    // Compact JSON, these four fields in this order.
    $plaintext = json_encode($fields, JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
    $iv = random_bytes(12);
    $tag = '';
    $ciphertext = openssl_encrypt(
        $plaintext, 'aes-256-gcm', $key, OPENSSL_RAW_DATA, $iv, $tag, '', 16
    );
    if ($ciphertext === false) {
        throw new RuntimeException('openssl_encrypt failed');
    }
    return base64_encode($iv . $ciphertext . $tag);
}

if (realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    try {
        $key = getenv('GATEWAY_KEY');
        if ($key === false || $key === '') {
            throw new InvalidArgumentException("set GATEWAY_KEY to the account's 32-character key");
        }
        $card = json_decode(stream_get_contents(STDIN), true, 8, JSON_THROW_ON_ERROR);
        echo encrypt_card($key, is_array($card) ? $card : []), "\n";
    } catch (Throwable $e) {
        fwrite(STDERR, 'encrypt_card.php: ' . $e->getMessage() . "\n");
        exit(1);
    }
}
