//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC>`.
//!
//! The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`, the
//! MAC is HMAC-SHA256 keyed with the secret's bytes, and the secret is
//! written `whsec_<base64 of the key>`.

use std::io::Read as _;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What every secret's text starts with.
pub(crate) const SECRET_PREFIX: &str = "whsec_";
/// Shortest key (bytes) accepted, as the Standard Webhooks spec asks.
pub(crate) const SECRET_BYTES_MIN: usize = 24;
/// Longest key (bytes) accepted.
pub(crate) const SECRET_BYTES_MAX: usize = 64;
/// Size of generated keys (bytes).
const GENERATED_SECRET_BYTES: usize = 32;

/// Why a secret was refused or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SecretError {
    /// The text lacks the `whsec_` prefix.
    #[error("must start with `{SECRET_PREFIX}`")]
    Prefix,
    /// What follows the prefix is not standard base64.
    #[error("the part after `{SECRET_PREFIX}` is not standard base64")]
    Base64,
    /// The key has the wrong size.
    #[error("the key must be {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes, got {0}")]
    Length(usize),
    /// The system's random source failed.
    #[error("cannot read random bytes for a secret: {0}")]
    Random(String),
}

/// A signing key and its `whsec_` text.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret {
    key: Vec<u8>,
    text: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log the key.
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Reads `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(SecretError::Prefix)?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Base64)?;
        if !(SECRET_BYTES_MIN..=SECRET_BYTES_MAX).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Secret {
            key,
            text: text.to_string(),
        })
    }

    /// A fresh secret from the operating system's random source
    /// (`/dev/urandom`: a general-purpose PRNG is not fit for keys).
    pub fn generate() -> Result<Secret, SecretError> {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut key))
            .map_err(|e| SecretError::Random(e.to_string()))?;
        let text = format!(
            "{SECRET_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(&key)
        );
        Ok(Secret { key, text })
    }

    /// The `whsec_…` text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The `webhook-signature` value for one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        sign(&self.key, id, timestamp, body)
    }
}

/// `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`.
pub(crate) fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    /// HMAC-SHA256 written out from its definition (RFC 2104) over plain
    /// SHA-256, so the test does not trust the code under test.
    fn reference_hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| block.map(|b| b ^ byte);
        let inner = Sha256::new()
            .chain_update(pad(0x36))
            .chain_update(message)
            .finalize();
        let outer = Sha256::new()
            .chain_update(pad(0x5c))
            .chain_update(inner)
            .finalize();
        outer.into()
    }

    #[test]
    fn signature_matches_an_independent_hmac_of_id_timestamp_and_body() {
        let key: Vec<u8> = (0u8..32).collect();
        let secret = Secret::parse(&format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(&key)
        ))
        .unwrap();
        let body = br#"{"specversion":"1.0","id":"e-1"}"#;
        let expected = reference_hmac(&key, &[b"e-1.1700000000." as &[u8], body].concat());
        assert_eq!(
            secret.sign("e-1", 1_700_000_000, body),
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(expected)
            )
        );
    }

    #[test]
    fn the_standard_webhooks_example_vector_verifies() {
        // The example of the Standard Webhooks specification (a 24-byte key).
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_checked_for_prefix_encoding_and_length() {
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        assert_eq!(Secret::parse(&b64(32)).unwrap_err(), SecretError::Prefix);
        assert_eq!(
            Secret::parse("whsec_not base64!").unwrap_err(),
            SecretError::Base64
        );
        assert_eq!(
            Secret::parse(&format!("whsec_{}", b64(23))).unwrap_err(),
            SecretError::Length(23)
        );
        assert_eq!(
            Secret::parse(&format!("whsec_{}", b64(65))).unwrap_err(),
            SecretError::Length(65)
        );
        assert!(Secret::parse(&format!("whsec_{}", b64(24))).is_ok());
        assert!(Secret::parse(&format!("whsec_{}", b64(64))).is_ok());
    }

    #[test]
    fn generated_secrets_parse_back_and_differ() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(Secret::parse(a.text()).unwrap(), a);
        assert!(format!("{a:?}").contains(".."), "the key is not printed");
    }
}
