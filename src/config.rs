//! Settings, read once from the environment (and `.env`); a bad value stops start-up naming the setting.

use crate::db::{DatabaseTarget, DEFAULT_SQLITE_FILE};
use crate::secret::REDACTED;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything Rollcall can be configured with. Its `Debug` output shows no secret.
#[derive(Clone)]
pub struct Settings {
    /// `DATABASE_URL`: `sqlite://PATH`, a file path, or `postgres://…`; default `rollcall.db`.
    pub database: DatabaseTarget,
    /// `ROLLCALL_DB_POOL_SIZE`: connections in the pool.
    pub db_pool_size: u32,
    /// `ROLLCALL_BIND`: `HOST:PORT` to listen on.
    pub bind: SocketAddr,
    /// `WORKOS_API_KEY`: the broker API key for full pulls.
    pub workos_api_key: Option<String>,
    /// `WORKOS_API_BASE`: the broker's API.
    pub workos_api_base: String,
    /// `WORKOS_WEBHOOK_SECRETS`: comma-separated; any of them verifies a webhook.
    pub webhook_secrets: Vec<String>,
    /// `WORKOS_WEBHOOK_TOLERANCE`: how far a signature's timestamp may be from now, either way.
    pub webhook_tolerance: Duration,
    /// `ROLLCALL_WEBHOOK_BODY_LIMIT`: the largest webhook body accepted, in bytes.
    pub webhook_body_limit: usize,
    /// `ROLLCALL_OPERATOR_TOKEN`: the bootstrap operator token.
    pub operator_token: Option<String>,
    /// `RESYNC_INTERVAL`: how often every directory is pulled in full; `0` turns it off.
    pub resync_interval: Duration,
    /// `WORKOS_USER_LISTING_RATE`: user-listing requests per second per directory the pull allows itself
    /// (the broker allows 4); `0` removes the limit, for a local dev broker.
    pub user_listing_rate: f64,
    /// `ROLLCALL_MASS_DEPROVISION_THRESHOLD`: the share of active members a pull may deprovision unheld.
    pub mass_deprovision_threshold: f64,
    /// `ROLLCALL_APPLY_MAX_ATTEMPTS`: attempts before a failing event is parked.
    pub apply_max_attempts: i32,
    /// `ROLLCALL_PULL_ON_ACTIVATION`: pull a directory in full once its `dsync.activated` is applied, and a
    /// workspace's directories when it turns directory sync on.
    pub pull_on_activation: bool,
    /// `ROLLCALL_AUTOMATIC_PULL_SPACING`: the least time between two automatic pulls of one directory (on
    /// `dsync.activated` or when a workspace turns directory sync on); `0` turns the spacing off.
    pub automatic_pull_spacing: Duration,
    /// `ROLLCALL_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `ROLLCALL_EVENT_RETENTION`: how long applied, duplicate, skipped and ignored deliveries are kept;
    /// `0` keeps them for ever.
    pub event_retention: Duration,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The shortest operator token accepted: a shorter one is guessable.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 32;

/// Values that stand in for a secret in examples and were never meant to be used. Any value starting
/// with `replace-me` is refused as well.
pub const PLACEHOLDERS: &[&str] = &[
    "change-me-operator-token",
    "whsec_change_me",
    "change-me",
    "changeme",
    "replace-me",
    "secret",
    "password",
];

/// Whether a secret's value is an example's placeholder.
pub fn is_placeholder(value: &str) -> bool {
    let value = value.trim().to_ascii_lowercase();
    value.starts_with("replace-me") || PLACEHOLDERS.contains(&value.as_str())
}

/// A setting that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {setting}: {problem}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

impl Settings {
    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, which returns a variable's value if it is set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let fail = |setting: &'static str, problem: String| ConfigError { setting, problem };
        let parse_or = |setting: &'static str, default: &str| {
            get(setting).unwrap_or_else(|| default.to_string())
        };

        let database = DatabaseTarget::parse(&parse_or("DATABASE_URL", DEFAULT_SQLITE_FILE))
            .map_err(|p| fail("DATABASE_URL", p))?;
        let bind_text = parse_or("ROLLCALL_BIND", "127.0.0.1:8080");
        let bind = resolve_bind(&bind_text).map_err(|p| fail("ROLLCALL_BIND", p))?;
        let workos_api_base = parse_or("WORKOS_API_BASE", "https://api.workos.com");
        if !(workos_api_base.starts_with("http://") || workos_api_base.starts_with("https://")) {
            return Err(fail(
                "WORKOS_API_BASE",
                format!("{workos_api_base:?} is not an http(s) URL"),
            ));
        }
        let webhook_secrets = get("WORKOS_WEBHOOK_SECRETS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        refuse_placeholders("WORKOS_WEBHOOK_SECRETS", &webhook_secrets)?;
        let workos_api_key = get("WORKOS_API_KEY");
        refuse_placeholders("WORKOS_API_KEY", &workos_api_key)?;
        let operator_token = get("ROLLCALL_OPERATOR_TOKEN");
        refuse_placeholders("ROLLCALL_OPERATOR_TOKEN", &operator_token)?;
        if operator_token
            .as_ref()
            .is_some_and(|t| t.chars().count() < MIN_OPERATOR_TOKEN_LEN)
        {
            return Err(fail(
                "ROLLCALL_OPERATOR_TOKEN",
                format!(
                    "is shorter than {MIN_OPERATOR_TOKEN_LEN} characters; use a long random value, such as `openssl rand -hex 32` prints"
                ),
            ));
        }
        let webhook_tolerance = parse_duration(&parse_or("WORKOS_WEBHOOK_TOLERANCE", "180s"))
            .map_err(|p| fail("WORKOS_WEBHOOK_TOLERANCE", p))?;
        let webhook_body_limit = parse_or("ROLLCALL_WEBHOOK_BODY_LIMIT", "1048576")
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1024)
            .ok_or_else(|| {
                fail(
                    "ROLLCALL_WEBHOOK_BODY_LIMIT",
                    "must be a whole number of bytes, at least 1024".into(),
                )
            })?;
        let resync_interval = parse_duration(&parse_or("RESYNC_INTERVAL", "1h"))
            .map_err(|p| fail("RESYNC_INTERVAL", p))?;
        let event_retention = parse_duration(&parse_or("ROLLCALL_EVENT_RETENTION", "30d"))
            .map_err(|p| fail("ROLLCALL_EVENT_RETENTION", p))?;
        let user_listing_rate = parse_or("WORKOS_USER_LISTING_RATE", "4")
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| {
                fail(
                    "WORKOS_USER_LISTING_RATE",
                    "must be requests per second, such as 4 (0: no limit)".into(),
                )
            })?;
        let mass_deprovision_threshold = parse_or("ROLLCALL_MASS_DEPROVISION_THRESHOLD", "0.2")
            .parse::<f64>()
            .ok()
            .filter(|v| (0.0..=1.0).contains(v))
            .ok_or_else(|| {
                fail(
                    "ROLLCALL_MASS_DEPROVISION_THRESHOLD",
                    "must be a share between 0 and 1, such as 0.2".into(),
                )
            })?;
        let apply_max_attempts = parse_or("ROLLCALL_APPLY_MAX_ATTEMPTS", "5")
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                fail(
                    "ROLLCALL_APPLY_MAX_ATTEMPTS",
                    "must be a whole number from 1 to 100".into(),
                )
            })?;
        let pull_on_activation = match parse_or("ROLLCALL_PULL_ON_ACTIVATION", "true")
            .to_ascii_lowercase()
            .as_str()
        {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            other => {
                return Err(fail(
                    "ROLLCALL_PULL_ON_ACTIVATION",
                    format!("{other:?} is not true or false"),
                ))
            }
        };
        let automatic_pull_spacing =
            parse_duration(&parse_or("ROLLCALL_AUTOMATIC_PULL_SPACING", "10m"))
                .map_err(|p| fail("ROLLCALL_AUTOMATIC_PULL_SPACING", p))?;
        let db_pool_size = parse_or("ROLLCALL_DB_POOL_SIZE", "8")
            .parse::<u32>()
            .ok()
            .filter(|n| (2..=256).contains(n))
            .ok_or_else(|| {
                fail(
                    "ROLLCALL_DB_POOL_SIZE",
                    "must be a whole number from 2 to 256".into(),
                )
            })?;
        let log_format = match parse_or("ROLLCALL_LOG_FORMAT", "text").as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(fail(
                    "ROLLCALL_LOG_FORMAT",
                    format!("{other:?} is not text or json"),
                ))
            }
        };
        Ok(Self {
            database,
            db_pool_size,
            bind,
            workos_api_key,
            workos_api_base,
            webhook_secrets,
            webhook_tolerance,
            webhook_body_limit,
            operator_token,
            resync_interval,
            user_listing_rate,
            mass_deprovision_threshold,
            apply_max_attempts,
            pull_on_activation,
            automatic_pull_spacing,
            log_format,
            event_retention,
        })
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |value: &Option<String>| value.as_ref().map(|_| REDACTED);
        f.debug_struct("Settings")
            .field("database", &self.database)
            .field("db_pool_size", &self.db_pool_size)
            .field("bind", &self.bind)
            .field("workos_api_key", &redacted(&self.workos_api_key))
            .field("workos_api_base", &self.workos_api_base)
            .field(
                "webhook_secrets",
                &vec![REDACTED; self.webhook_secrets.len()],
            )
            .field("webhook_tolerance", &self.webhook_tolerance)
            .field("webhook_body_limit", &self.webhook_body_limit)
            .field("operator_token", &redacted(&self.operator_token))
            .field("resync_interval", &self.resync_interval)
            .field("user_listing_rate", &self.user_listing_rate)
            .field(
                "mass_deprovision_threshold",
                &self.mass_deprovision_threshold,
            )
            .field("apply_max_attempts", &self.apply_max_attempts)
            .field("pull_on_activation", &self.pull_on_activation)
            .field("automatic_pull_spacing", &self.automatic_pull_spacing)
            .field("log_format", &self.log_format)
            .field("event_retention", &self.event_retention)
            .finish()
    }
}

/// Refuses a secret setting whose value, or one of whose values, is an example's placeholder.
fn refuse_placeholders<'a>(
    setting: &'static str,
    values: impl IntoIterator<Item = &'a String>,
) -> Result<(), ConfigError> {
    if values.into_iter().any(|v| is_placeholder(v)) {
        return Err(ConfigError {
            setting,
            problem: "is a placeholder from an example, not a real secret; set the real value"
                .into(),
        });
    }
    Ok(())
}

fn resolve_bind(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|e| format!("{text:?} is not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// Reads `90`, `90s`, `30m`, `1h`, `30d` or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 30m, 1h or 30d"))?;
    let unit_seconds = match unit {
        "ms" => return Ok(Duration::from_millis(value)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?} has an unknown unit; use s, m, h or d")),
    };
    value
        .checked_mul(unit_seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_run_on_an_embedded_sqlite_file() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database, DatabaseTarget::Sqlite("rollcall.db".into()));
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert!(s.webhook_secrets.is_empty());
        assert_eq!(s.webhook_tolerance, Duration::from_secs(180));
        assert_eq!(s.webhook_body_limit, 1 << 20);
        assert_eq!(s.resync_interval, Duration::from_secs(3600));
        assert_eq!(s.user_listing_rate, 4.0);
    }

    #[test]
    fn secrets_are_a_comma_separated_list() {
        let s = settings(&[("WORKOS_WEBHOOK_SECRETS", " old , new ,")]).unwrap();
        assert_eq!(s.webhook_secrets, ["old", "new"]);
    }

    #[test]
    fn a_bad_setting_is_named() {
        for (name, value) in [
            ("DATABASE_URL", "mysql://x"),
            ("ROLLCALL_BIND", "nowhere"),
            ("RESYNC_INTERVAL", "soon"),
            ("WORKOS_USER_LISTING_RATE", "-1"),
            ("ROLLCALL_MASS_DEPROVISION_THRESHOLD", "2"),
            ("ROLLCALL_LOG_FORMAT", "xml"),
            ("WORKOS_API_BASE", "ftp://x"),
            ("ROLLCALL_WEBHOOK_BODY_LIMIT", "ten"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert_eq!(error.setting, name);
            assert!(error.to_string().contains(name));
        }
    }

    #[test]
    fn pulls_on_activation_unless_turned_off() {
        assert!(settings(&[]).unwrap().pull_on_activation);
        let off = settings(&[("ROLLCALL_PULL_ON_ACTIVATION", "false")]).unwrap();
        assert!(!off.pull_on_activation);
        let error = settings(&[("ROLLCALL_PULL_ON_ACTIVATION", "maybe")]).unwrap_err();
        assert_eq!(error.setting, "ROLLCALL_PULL_ON_ACTIVATION");
    }

    /// A token long enough to be accepted.
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn placeholder_secrets_are_refused_by_name() {
        for (name, value) in [
            ("ROLLCALL_OPERATOR_TOKEN", "change-me-operator-token"),
            ("WORKOS_WEBHOOK_SECRETS", "whsec_change_me"),
            ("WORKOS_WEBHOOK_SECRETS", "whsec_real_one, whsec_change_me"),
            ("WORKOS_API_KEY", "replace-me"),
            (
                "ROLLCALL_OPERATOR_TOKEN",
                "Replace-Me-with-a-random-token-of-32-or-more",
            ),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert_eq!(error.setting, name, "{value}");
            assert!(error.to_string().contains("placeholder"), "{error}");
        }
    }

    #[test]
    fn the_example_file_starts_nothing_until_its_secrets_are_replaced() {
        let example: HashMap<&str, &str> = include_str!("../.env.example")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .collect();
        for name in ["ROLLCALL_OPERATOR_TOKEN", "WORKOS_WEBHOOK_SECRETS"] {
            assert!(is_placeholder(example[name]), "{name} in .env.example");
        }
        let mut vars: Vec<(&str, &str)> = example.into_iter().collect();
        vars.retain(|(name, _)| *name != "ROLLCALL_OPERATOR_TOKEN");
        assert_eq!(
            settings(&vars).unwrap_err().setting,
            "WORKOS_WEBHOOK_SECRETS"
        );
    }

    #[test]
    fn a_short_operator_token_is_refused() {
        let error = settings(&[("ROLLCALL_OPERATOR_TOKEN", &TOKEN[1..])]).unwrap_err();
        assert_eq!(error.setting, "ROLLCALL_OPERATOR_TOKEN");
        assert!(error.to_string().contains("32 characters"), "{error}");
        assert!(!error.to_string().contains(&TOKEN[1..]));
        let s = settings(&[("ROLLCALL_OPERATOR_TOKEN", TOKEN)]).unwrap();
        assert_eq!(s.operator_token.as_deref(), Some(TOKEN));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let s = settings(&[
            ("ROLLCALL_OPERATOR_TOKEN", TOKEN),
            ("WORKOS_WEBHOOK_SECRETS", "whsec_old_one,whsec_new_one"),
            ("WORKOS_API_KEY", "sk_live_key"),
            ("DATABASE_URL", "postgres://app:s3cret@db/rollcall"),
        ])
        .unwrap();
        let printed = format!("{s:?}");
        for secret in [
            TOKEN,
            "whsec_old_one",
            "whsec_new_one",
            "sk_live_key",
            "s3cret",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("[redacted]"), "{printed}");
        assert!(printed.contains("db/rollcall"), "{printed}");
    }

    #[test]
    fn automatic_pulls_are_spaced_unless_turned_off() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.automatic_pull_spacing, Duration::from_secs(600));
        let off = settings(&[("ROLLCALL_AUTOMATIC_PULL_SPACING", "0")]).unwrap();
        assert!(off.automatic_pull_spacing.is_zero());
        let error = settings(&[("ROLLCALL_AUTOMATIC_PULL_SPACING", "often")]).unwrap_err();
        assert_eq!(error.setting, "ROLLCALL_AUTOMATIC_PULL_SPACING");
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("18446744073709551615d").is_err());
        let retention = settings(&[("ROLLCALL_EVENT_RETENTION", "soon")]).unwrap_err();
        assert_eq!(retention.setting, "ROLLCALL_EVENT_RETENTION");
        assert!(parse_duration("999999999999999999d").is_err());
    }
}
