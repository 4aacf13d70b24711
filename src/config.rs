//! Settings, read once from the environment (and `.env`); a bad value stops start-up naming the setting.

use crate::db::{DatabaseTarget, DEFAULT_SQLITE_FILE};
use std::net::SocketAddr;
use std::time::Duration;

/// Everything Rollcall can be configured with.
#[derive(Debug, Clone)]
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
    /// `ROLLCALL_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
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
            workos_api_key: get("WORKOS_API_KEY"),
            workos_api_base,
            webhook_secrets,
            webhook_tolerance,
            webhook_body_limit,
            operator_token: get("ROLLCALL_OPERATOR_TOKEN"),
            resync_interval,
            user_listing_rate,
            mass_deprovision_threshold,
            apply_max_attempts,
            pull_on_activation,
            log_format,
        })
    }
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

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("999999999999999999d").is_err());
    }
}
