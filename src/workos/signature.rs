//! The `WorkOS-Signature` header: `t=<unix milliseconds>, v1=<hex HMAC-SHA256 of "t.body">`.
//!
//! Verification runs over the raw request bytes, before any JSON parsing, against every configured
//! secret (several are accepted at once while a secret is rotated).

use crate::secret::{ExposeSecret, SecretString};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The SDKs' default tolerance, applied both to old and to future timestamps.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(180);

/// Why a webhook's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no webhook secret is configured, so no webhook can be verified")]
    NoSecretConfigured,
    #[error("the WorkOS-Signature header is missing")]
    MissingHeader,
    #[error("the WorkOS-Signature header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("the signature timestamp is {0} ms away from now, outside the tolerance")]
    OutsideTolerance(i64),
    #[error("no signature matches any configured secret")]
    Mismatch,
}

/// The longest header looked at: a timestamp and a handful of signatures fit many times over.
pub const MAX_HEADER_LEN: usize = 1024;

/// The most `v1` signatures a header may carry (the broker sends one; a few allow for its own rotation).
pub const MAX_SIGNATURES: usize = 4;

/// The parts of a `WorkOS-Signature` header that matter.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    /// The timestamp exactly as sent: it is part of the signed message.
    pub timestamp: String,
    pub timestamp_ms: i64,
    /// The HMAC-SHA256 values to compare with, decoded.
    pub signatures: Vec<[u8; 32]>,
}

impl SignatureHeader {
    /// Parses strictly but cheaply, without the body: parts split on `,` and trimmed, unknown keys
    /// ignored; every `v1` must be 64 hex digits, and there may be at most [`MAX_SIGNATURES`] of them.
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        if header.len() > MAX_HEADER_LEN {
            return Err(SignatureError::MalformedHeader("the header is too long"));
        }
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            let Some((key, value)) = part.trim().split_once('=') else {
                continue;
            };
            match key.trim() {
                "t" => timestamp = Some(value.trim()),
                "v1" => {
                    if signatures.len() == MAX_SIGNATURES {
                        return Err(SignatureError::MalformedHeader("too many v1= signatures"));
                    }
                    let mut digest = [0u8; 32];
                    hex::decode_to_slice(value.trim(), &mut digest).map_err(|_| {
                        SignatureError::MalformedHeader("a v1= signature is not 64 hex digits")
                    })?;
                    signatures.push(digest);
                }
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::MalformedHeader("no t= timestamp"))?;
        if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignatureError::MalformedHeader(
                "the timestamp is not a number",
            ));
        }
        let timestamp_ms = timestamp
            .parse::<i64>()
            .map_err(|_| SignatureError::MalformedHeader("the timestamp is out of range"))?;
        if signatures.is_empty() {
            return Err(SignatureError::MalformedHeader("no v1= signature"));
        }
        Ok(Self {
            timestamp: timestamp.to_string(),
            timestamp_ms,
            signatures,
        })
    }

    /// Whether the body is signed by one of the secrets: the MAC is computed once per secret and compared
    /// with every signature in constant time.
    pub fn verify_body(&self, body: &[u8], secrets: &[SecretString]) -> Result<(), SignatureError> {
        let mut matched = subtle::Choice::from(0);
        for secret in secrets {
            let expected = mac(secret.expose_secret(), &self.timestamp, body)
                .finalize()
                .into_bytes();
            for candidate in &self.signatures {
                matched |= expected.as_slice().ct_eq(candidate);
            }
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

/// What can be checked before the body is read: secrets configured, a well-formed header, and a
/// timestamp within the tolerance of `now_ms` (unix milliseconds).
pub fn check_header(
    header: Option<&str>,
    secrets: &[SecretString],
    now_ms: i64,
    tolerance: Duration,
) -> Result<SignatureHeader, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecretConfigured);
    }
    let header = SignatureHeader::parse(header.ok_or(SignatureError::MissingHeader)?)?;
    let skew = now_ms.saturating_sub(header.timestamp_ms);
    if skew.unsigned_abs() > tolerance.as_millis() as u64 {
        return Err(SignatureError::OutsideTolerance(skew));
    }
    Ok(header)
}

/// Checks a webhook against the configured secrets at the instant `now_ms` (unix milliseconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[SecretString],
    now_ms: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    check_header(header, secrets, now_ms, tolerance)?.verify_body(body, secrets)
}

/// The header value the broker would send for `body` at `timestamp_ms`.
pub fn sign(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let timestamp = timestamp_ms.to_string();
    let digest = mac(secret, &timestamp, body).finalize().into_bytes();
    format!("t={timestamp}, v1={}", hex::encode(digest))
}

fn mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn vectors() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/workos/signature-vectors")
    }

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|s| SecretString::from(*s)).collect()
    }

    /// The clock the vector was signed at.
    fn clock_of(header: &str) -> i64 {
        SignatureHeader::parse(header).unwrap().timestamp_ms
    }

    #[test]
    fn python_sdk_vectors_verify_at_their_own_time() {
        for name in [
            "py_2021_connection_activated",
            "py_2024_connection_activated",
        ] {
            let dir = vectors().join("python").join(name);
            let header = read(dir.join("mock_header.txt"));
            let body = read(dir.join("mock_event_body.txt"));
            let secret = read(dir.join("mock_secret.txt"));
            let now = clock_of(header.trim());
            let ok = verify(
                Some(header.trim()),
                body.as_bytes(),
                &secrets(&[secret.trim()]),
                now,
                DEFAULT_TOLERANCE,
            );
            assert_eq!(ok, Ok(()), "{name}");
            // Years later, the same delivery is stale.
            let stale = verify(
                Some(header.trim()),
                body.as_bytes(),
                &secrets(&[secret.trim()]),
                now + 181_000,
                DEFAULT_TOLERANCE,
            );
            assert!(
                matches!(stale, Err(SignatureError::OutsideTolerance(_))),
                "{name}"
            );
            // A header without its timestamp is malformed.
            let no_t = read(dir.join("mock_header_no_timestamp.txt"));
            assert!(matches!(
                verify(
                    Some(no_t.trim()),
                    body.as_bytes(),
                    &secrets(&[secret.trim()]),
                    now,
                    DEFAULT_TOLERANCE
                ),
                Err(SignatureError::MalformedHeader(_))
            ));
        }
    }

    #[test]
    fn python_sdk_vector_rejects_the_bad_secret_and_checks_unknown_events() {
        let dir = vectors().join("python/py_2024_connection_activated");
        let header = read(dir.join("mock_header.txt"));
        let body = read(dir.join("mock_event_body.txt"));
        let bad = read(dir.join("mock_bad_secret.txt"));
        let now = clock_of(header.trim());
        assert_eq!(
            verify(
                Some(header.trim()),
                body.as_bytes(),
                &secrets(&[bad.trim()]),
                now,
                DEFAULT_TOLERANCE
            ),
            Err(SignatureError::Mismatch)
        );
        let unknown_header = read(dir.join("mock_unknown_webhook_header.txt"));
        let unknown_body = read(dir.join("mock_unknown_webhook_body.txt"));
        let secret = read(dir.join("mock_secret.txt"));
        assert_eq!(
            verify(
                Some(unknown_header.trim()),
                unknown_body.as_bytes(),
                &secrets(&[secret.trim()]),
                now,
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn dotnet_sdk_vector_verifies() {
        let dir = vectors().join("dotnet_2021_dsync_user_created");
        let header = read(dir.join("header.txt"));
        let body = read(dir.join("body.json"));
        let secret = read(dir.join("secret.txt"));
        let now = clock_of(header.trim());
        assert_eq!(
            verify(
                Some(header.trim()),
                body.as_bytes(),
                &secrets(&[secret.trim()]),
                now,
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn edge_cases_behave_as_computed() {
        let cases: serde_json::Value =
            serde_json::from_str(&read(vectors().join("self_computed_edge_cases.json"))).unwrap();
        let cases = cases["cases"].as_array().unwrap();
        assert!(cases.len() >= 5);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let header = case["header"].as_str().unwrap();
            let body = case["body"].as_str().unwrap();
            let secret = case["secret"].as_str().unwrap();
            let expect_valid = case["computed_ok"].as_bool().unwrap();
            let result = verify(
                Some(header),
                body.as_bytes(),
                &secrets(&[secret]),
                clock_of(header),
                DEFAULT_TOLERANCE,
            );
            assert_eq!(result.is_ok(), expect_valid, "{name}: {result:?}");
        }
    }

    #[test]
    fn timestamps_are_milliseconds_and_tolerance_is_two_sided() {
        let secret = secrets(&["whsec"]);
        let now = 1_700_000_000_000;
        let body = br#"{"id":"event_1"}"#;
        let at = |t: i64| {
            verify(
                Some(&sign("whsec", t, body)),
                body,
                &secret,
                now,
                DEFAULT_TOLERANCE,
            )
        };
        assert_eq!(at(now), Ok(()));
        assert_eq!(at(now - 179_999), Ok(()));
        assert_eq!(at(now + 179_999), Ok(()));
        assert!(matches!(
            at(now - 181_000),
            Err(SignatureError::OutsideTolerance(_))
        ));
        assert!(matches!(
            at(now + 181_000),
            Err(SignatureError::OutsideTolerance(_))
        ));
        // A timestamp in seconds is decades in the past.
        assert!(matches!(
            at(now / 1000),
            Err(SignatureError::OutsideTolerance(_))
        ));
    }

    #[test]
    fn any_configured_secret_verifies_during_rotation() {
        let now = 1_700_000_000_000;
        let body = br#"{"id":"event_1"}"#;
        let header = sign("new-secret", now, body);
        let configured = secrets(&["old-secret", "new-secret"]);
        assert_eq!(
            verify(Some(&header), body, &configured, now, DEFAULT_TOLERANCE),
            Ok(())
        );
        assert_eq!(
            verify(
                Some(&header),
                body,
                &secrets(&["old-secret"]),
                now,
                DEFAULT_TOLERANCE
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn several_v1_values_and_unknown_keys_are_accepted() {
        let now = 1_700_000_000_000;
        let body = b"{}";
        let good = sign("s", now, body);
        let v1 = good.split("v1=").nth(1).unwrap();
        let header = format!("t={now}, v0=zzz, v1={}, v1={v1}, extra", "00".repeat(32));
        assert_eq!(
            verify(
                Some(&header),
                body,
                &secrets(&["s"]),
                now,
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
        let spaced = format!("  v1 = {v1} ,t = {now}  ");
        assert_eq!(
            verify(
                Some(&spaced),
                body,
                &secrets(&["s"]),
                now,
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn tampered_missing_and_garbage_are_rejected() {
        let now = 1_700_000_000_000;
        let body = br#"{"id":"event_1","event":"dsync.user.created"}"#;
        let header = sign("s", now, body);
        let s = secrets(&["s"]);
        let tampered = br#"{"id":"event_2","event":"dsync.user.created"}"#;
        assert_eq!(
            verify(Some(&header), tampered, &s, now, DEFAULT_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(None, body, &s, now, DEFAULT_TOLERANCE),
            Err(SignatureError::MissingHeader)
        );
        for garbage in [
            "",
            "garbage",
            "t=abc, v1=00",
            "t=, v1=00",
            "v1=00",
            "t=1700000000000",
            "t=-5, v1=00",
        ] {
            assert!(
                matches!(
                    verify(Some(garbage), body, &s, now, DEFAULT_TOLERANCE),
                    Err(SignatureError::MalformedHeader(_))
                ),
                "{garbage:?}"
            );
        }
        let many = format!("t={now}{}", format!(", v1={}", "00".repeat(32)).repeat(5));
        let long = format!(
            "t={now}, v1={}, x={}",
            &header[header.len() - 64..],
            "a".repeat(1100)
        );
        for refused in [
            format!("t={now}, v1=not-hex"),
            format!("t={now}, v1=00"),
            format!("t={now}, v1={}", "0".repeat(66)),
            many,
            long,
        ] {
            assert!(
                matches!(
                    verify(Some(&refused), body, &s, now, DEFAULT_TOLERANCE),
                    Err(SignatureError::MalformedHeader(_))
                ),
                "{refused:?}"
            );
        }
        assert_eq!(
            verify(Some(&header), body, &[], now, DEFAULT_TOLERANCE),
            Err(SignatureError::NoSecretConfigured)
        );
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        const NOW: i64 = 1_700_000_000_000;

        /// Headers shaped like the real one, with parts added, dropped, repeated or garbled.
        fn header_like() -> impl Strategy<Value = String> {
            let part = prop_oneof![
                (NOW - 400_000..NOW + 400_000).prop_map(|t| format!("t={t}")),
                "[0-9a-fA-F]{0,70}".prop_map(|v| format!("v1={v}")),
                "[ -~]{0,20}",
                Just("v1=".to_string()),
                Just("t=".to_string()),
            ];
            prop::collection::vec(part, 0..8).prop_map(|parts| parts.join(","))
        }

        proptest! {
            #![proptest_config(crate::workos::proptest_config(3000))]

            #[test]
            fn any_header_is_answered_without_panic_and_unsigned_never_verifies(
                header in prop_oneof![header_like(), "\\PC{0,200}"],
                body in prop::collection::vec(any::<u8>(), 0..256),
            ) {
                let secrets = [SecretString::from("whsec_fuzz")];
                let result = verify(Some(&header), &body, &secrets, NOW, DEFAULT_TOLERANCE);
                // Nothing but a MAC made with the secret verifies.
                prop_assert!(result.is_err(), "{header:?} verified");
            }

            #[test]
            fn signed_bodies_verify_and_any_change_is_refused(
                secret in "[ -~]{1,40}",
                body in prop::collection::vec(any::<u8>(), 0..512),
                at in NOW - 170_000..NOW + 170_000,
                flip in any::<prop::sample::Index>(),
                bit in 0..8u8,
            ) {
                let secrets = [SecretString::from("whsec_other"), SecretString::from(secret.as_str())];
                let header = sign(&secret, at, &body);
                prop_assert_eq!(verify(Some(&header), &body, &secrets, NOW, DEFAULT_TOLERANCE), Ok(()));
                if !body.is_empty() {
                    let mut changed = body.clone();
                    changed[flip.index(body.len())] ^= 1 << bit;
                    prop_assert_eq!(
                        verify(Some(&header), &changed, &secrets, NOW, DEFAULT_TOLERANCE),
                        Err(SignatureError::Mismatch)
                    );
                }
                let mut forged = header.into_bytes();
                let last = forged.len() - 1 - flip.index(64);
                forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
                let forged = String::from_utf8(forged).unwrap();
                prop_assert!(verify(Some(&forged), &body, &secrets, NOW, DEFAULT_TOLERANCE).is_err());
            }
        }
    }
}
