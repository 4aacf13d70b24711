//! The `WorkOS-Signature` header: `t=<unix milliseconds>, v1=<hex HMAC-SHA256 of "t.body">`.
//!
//! Verification runs over the raw request bytes, before any JSON parsing, against every configured
//! secret (several are accepted at once while a secret is rotated).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

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

/// The parts of a `WorkOS-Signature` header that matter.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader<'a> {
    /// The timestamp exactly as sent: it is part of the signed message.
    pub timestamp: &'a str,
    pub timestamp_ms: i64,
    pub signatures: Vec<&'a str>,
}

impl<'a> SignatureHeader<'a> {
    /// Parses leniently: parts split on `,` and trimmed, unknown keys ignored, several `v1` accepted.
    pub fn parse(header: &'a str) -> Result<Self, SignatureError> {
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            let Some((key, value)) = part.trim().split_once('=') else {
                continue;
            };
            match key.trim() {
                "t" => timestamp = Some(value.trim()),
                "v1" => signatures.push(value.trim()),
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
            timestamp,
            timestamp_ms,
            signatures,
        })
    }
}

/// Checks a webhook against the configured secrets at the instant `now_ms` (unix milliseconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now_ms: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecretConfigured);
    }
    let header = SignatureHeader::parse(header.ok_or(SignatureError::MissingHeader)?)?;
    let skew = now_ms.saturating_sub(header.timestamp_ms);
    if skew.unsigned_abs() > tolerance.as_millis() as u64 {
        return Err(SignatureError::OutsideTolerance(skew));
    }
    let candidates: Vec<Vec<u8>> = header
        .signatures
        .iter()
        .filter_map(|s| hex::decode(s).ok())
        .collect();
    for secret in secrets {
        for candidate in &candidates {
            // verify_slice compares in constant time.
            if mac(secret, header.timestamp, body)
                .verify_slice(candidate)
                .is_ok()
            {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
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

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
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
        let not_hex = format!("t={now}, v1=not-hex");
        assert_eq!(
            verify(Some(&not_hex), body, &s, now, DEFAULT_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(Some(&header), body, &[], now, DEFAULT_TOLERANCE),
            Err(SignatureError::NoSecretConfigured)
        );
    }
}
