// Package seal encrypts sensitive values, such as TOTP secrets, for storage
// at rest with AES-256-GCM under a keyring of master keys that live in the
// environment or a key file and never in the database.
//
// # Format
//
// A sealed blob is self-describing, so every row names the key that opens it:
//
//	version (1 byte, 0x01) | key ID (4 bytes, big-endian) | nonce (12) | ciphertext | tag (16)
//
// The nonce is drawn from crypto/rand for every Seal. The 5-byte header is
// authenticated together with the caller's associated data, so a blob whose
// version or key ID was altered does not open. Callers should bind each blob
// to the row that owns it with [AD], e.g.
//
//	seal.AD("totp-secret/v1", tenantID, userID, deviceID)
//
// so that a blob copied onto another row fails with [ErrAuth].
//
// # Keys
//
// A key is 32 random bytes written as standard base64 with padding (44
// characters); [GenerateKey] makes one. A keyring spec, as read by
// [ParseKeyring] from an environment variable or by [LoadKeyFile] from a file,
// is a list of ID:BASE64 entries separated by commas or whitespace, where the
// FIRST entry is the active key that new writes use:
//
//	2:<new key base64>,1:<old key base64>
//
// A spec that is a single bare base64 key means key ID 1. IDs are decimal,
// 1 to 4294967295; 0 is reserved.
//
// # Rotation
//
//  1. Add the new key under a new ID to the end of the spec and deploy, so
//     every instance can open blobs written under it.
//  2. Move it to the front of the spec, making it active, and deploy.
//  3. Rewrite every row with [Keyring.Reseal] (or select rows where
//     [Keyring.NeedsRotation] reports true); it skips rows that are already
//     under the active key, so the pass can be interrupted and rerun.
//  4. Remove the old key from the spec. Any row that was missed now fails with
//     [ErrUnknownKey], which names the key ID it needs.
//
// Random 96-bit nonces keep the chance of a nonce collision negligible for up
// to 2^32 seals per key; rotating well before then is part of the procedure.
package seal
