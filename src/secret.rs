//! Values kept out of logs and `Debug` output: API keys, signing secrets, tokens, database URLs. They are
//! held as [`SecretString`] (the `secrecy` crate): its `Debug` output shows no value, its memory is zeroed
//! when it is dropped, and the value is read only through [`ExposeSecret::expose_secret`], where it is used.

pub use secrecy::{ExposeSecret, SecretString};

/// What a secret shows instead of its value where Rollcall writes the redaction itself (error messages
/// quoting a setting, a database URL with its password taken out).
pub const REDACTED: &str = "[redacted]";

/// Reads a secret option or environment variable (clap's value parser: `SecretString` has no `FromStr`).
pub fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(value.into())
}

/// The secret with surrounding white space removed, or `None` when nothing is left.
pub fn trimmed(secret: &SecretString) -> Option<SecretString> {
    Some(secret.expose_secret().trim())
        .filter(|value| !value.is_empty())
        .map(SecretString::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_value() {
        let secret = SecretString::from("sk_live_do_not_print");
        for printed in [format!("{secret:?}"), format!("{:?}", Some(secret.clone()))] {
            assert!(!printed.contains("do_not_print"), "{printed}");
            assert!(printed.contains("REDACTED"), "{printed}");
        }
        assert_eq!(secret.expose_secret(), "sk_live_do_not_print");
    }

    #[test]
    fn trimming_drops_blank_secrets() {
        let trimmed =
            |value: &str| super::trimmed(&value.into()).map(|s| s.expose_secret().to_owned());
        assert_eq!(trimmed("  whsec_x  ").as_deref(), Some("whsec_x"));
        assert_eq!(trimmed("   "), None);
    }
}
