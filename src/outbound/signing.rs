//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the receiver verifies a delivery with
//! the endpoint's secret and any of the specification's libraries.
//!
//! The secret is `whsec_` and the base64 of 24 random bytes; the signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`, and `webhook-signature` is `v1,` and the base64 of its
//! HMAC-SHA256 under the secret's bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix of every endpoint secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new endpoint secret.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` header of a delivery, or `None` for a secret that is not one of ours.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{message_id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example (its test suite's secret, id, timestamp and payload).
    #[test]
    fn signs_as_the_specification_does() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn a_new_secret_is_prefixed_and_signs() {
        let secret = new_secret();
        assert!(secret.starts_with(SECRET_PREFIX));
        assert!(sign(&secret, "msg_1", 1, b"{}").is_some());
        assert_ne!(new_secret(), secret);
        assert_eq!(sign("not-a-secret", "msg_1", 1, b"{}"), None);
    }
}
