//! Settings: `rollcall serve`'s options, each also read from its environment variable (and `.env`); a bad
//! value stops start-up naming the setting.

use crate::db::{redact_password, DatabaseTarget, DEFAULT_SQLITE_FILE};
use crate::secret::{parse_secret, trimmed, ExposeSecret, SecretString, REDACTED};
use clap::{ArgAction, Args, FromArgMatches};
use std::net::SocketAddr;
use std::time::Duration;

/// Everything Rollcall can be configured with. Its `Debug` output shows no secret (each is a
/// [`SecretString`], and the database URL hides its password), and `--help` shows no secret's value from the
/// environment.
#[derive(Clone, Debug, Args)]
pub struct Settings {
    /// Where data lives: sqlite://PATH, a file path, or postgres://USER:PASSWORD@HOST:PORT/DB.
    #[arg(long = "database-url", env = "DATABASE_URL", default_value = DEFAULT_SQLITE_FILE,
        value_name = "URL", value_parser = DatabaseTarget::parse, hide_env_values = true)]
    pub database: DatabaseTarget,
    /// Connections in the database pool (2 to 256).
    #[arg(long, env = "ROLLCALL_DB_POOL_SIZE", default_value = "8", value_name = "COUNT",
        value_parser = clap::value_parser!(u32).range(2..=256))]
    pub db_pool_size: u32,
    /// Where the service listens, HOST:PORT.
    #[arg(long, env = "ROLLCALL_BIND", default_value = "127.0.0.1:8080", value_name = "HOST:PORT",
        value_parser = resolve_bind)]
    pub bind: SocketAddr,
    /// The broker API key for full pulls; without it, no pull runs.
    #[arg(
        long,
        env = "WORKOS_API_KEY",
        value_name = "KEY",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub workos_api_key: Option<SecretString>,
    /// The broker's API.
    #[arg(long, env = "WORKOS_API_BASE", default_value = "https://api.workos.com", value_name = "URL",
        value_parser = http_url)]
    pub workos_api_base: String,
    /// Webhook signing secrets, comma-separated, each at least 16 characters; any of them verifies a
    /// webhook (none: every one is refused).
    #[arg(
        long,
        env = "WORKOS_WEBHOOK_SECRETS",
        value_name = "SECRETS",
        value_delimiter = ',',
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub webhook_secrets: Vec<SecretString>,
    /// How far a webhook signature's timestamp may be from now, either way (at most 1h): a captured
    /// request can be replayed for this long.
    #[arg(long, env = "WORKOS_WEBHOOK_TOLERANCE", default_value = "180s", value_name = "DURATION",
        value_parser = webhook_tolerance)]
    pub webhook_tolerance: Duration,
    /// The largest webhook body accepted, in bytes (at least 1024); larger ones get 413.
    #[arg(long, env = "ROLLCALL_WEBHOOK_BODY_LIMIT", default_value = "1048576", value_name = "BYTES",
        value_parser = body_limit)]
    pub webhook_body_limit: usize,
    /// How long a webhook's body may take to arrive in full once its headers are in (1s to 5m); a slower
    /// one gets 408 and its connection is closed, so a client sending a byte now and then holds nothing.
    #[arg(long, env = "ROLLCALL_WEBHOOK_BODY_TIMEOUT", default_value = "10s", value_name = "DURATION",
        value_parser = body_timeout)]
    pub webhook_body_timeout: Duration,
    /// Connections the service keeps open at once (64 to 1000000); more wait until one closes. Each takes
    /// a file descriptor, so keep it under the process's open-file limit (`ulimit -n`).
    #[arg(long, env = "ROLLCALL_MAX_CONNECTIONS", default_value = "4096", value_name = "COUNT",
        value_parser = clap::value_parser!(u32).range(64..=1_000_000))]
    pub max_connections: u32,
    /// The bootstrap operator token, at least 32 characters: may do everything over the API.
    #[arg(
        long,
        env = "ROLLCALL_OPERATOR_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub operator_token: Option<SecretString>,
    /// How often every directory is pulled in full (0: never on a schedule) [default: 1h, or 1d while
    /// the Events API tail runs].
    #[arg(long, env = "RESYNC_INTERVAL", value_name = "DURATION",
        value_parser = parse_setting_duration)]
    pub resync_interval: Option<Duration>,
    /// User-listing requests per second per directory a pull allows itself (the broker allows 4; 0: no limit).
    #[arg(long, env = "WORKOS_USER_LISTING_RATE", default_value = "4", value_name = "PER_SECOND",
        value_parser = listing_rate)]
    pub user_listing_rate: f64,
    /// Requests per second each SCIM directory may make (its identity provider's clients together; a
    /// burst of one second's worth is allowed); more get 429 with `Retry-After`. 0: no limit.
    #[arg(long, env = "ROLLCALL_SCIM_RATE", default_value = "100", value_name = "PER_SECOND",
        value_parser = clap::value_parser!(u32))]
    pub scim_rate: u32,
    /// The largest SCIM request body accepted, in bytes (at least 1024); larger ones get 413.
    #[arg(long, env = "ROLLCALL_SCIM_BODY_LIMIT", default_value = "1048576", value_name = "BYTES",
        value_parser = body_limit)]
    pub scim_body_limit: usize,
    /// The share of a directory's active members a pull may deprovision before it is held (0 to 1).
    #[arg(long, env = "ROLLCALL_MASS_DEPROVISION_THRESHOLD", default_value = "0.2", value_name = "SHARE",
        value_parser = share)]
    pub mass_deprovision_threshold: f64,
    /// Attempts before an event that fails to apply is parked as failed (1 to 100).
    #[arg(long, env = "ROLLCALL_APPLY_MAX_ATTEMPTS", default_value = "5", value_name = "COUNT",
        value_parser = clap::value_parser!(i32).range(1..=100))]
    pub apply_max_attempts: i32,
    /// Pull a directory once its dsync.activated is applied, and a workspace's when it turns sync on.
    #[arg(long, env = "ROLLCALL_PULL_ON_ACTIVATION", default_value = "true", value_name = "BOOL",
        action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub pull_on_activation: bool,
    /// The least time between two automatic pulls of one directory (0: no spacing).
    #[arg(long, env = "ROLLCALL_AUTOMATIC_PULL_SPACING", default_value = "10m", value_name = "DURATION",
        value_parser = parse_setting_duration)]
    pub automatic_pull_spacing: Duration,
    /// Pulls run at once by this process (1 to 64); more wait their turn, workspaces taking turns. A pull
    /// holds its slot while it waits for the broker, so a broker outage holds these and nothing else.
    #[arg(long, env = "ROLLCALL_MAX_CONCURRENT_PULLS", default_value = "3", value_name = "COUNT",
        value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_concurrent_pulls: u32,
    /// How log lines are written; RUST_LOG filters them.
    #[arg(
        long,
        env = "ROLLCALL_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
    /// How long applied, duplicate, skipped and ignored deliveries, bodies that were not events, and the
    /// change feed's changes are kept (0: for ever).
    #[arg(long, env = "ROLLCALL_EVENT_RETENTION", default_value = "30d", value_name = "DURATION",
        value_parser = parse_setting_duration)]
    pub event_retention: Duration,
    /// Where events come from: webhooks, events (the Events API; webhooks only wake it) or both
    /// [default: both with WORKOS_API_KEY, else webhooks].
    #[arg(long, env = "ROLLCALL_EVENT_SOURCE", value_name = "SOURCE")]
    pub event_source: Option<EventSource>,
    /// Let webhook endpoints use plain http:// and reach loopback and private addresses (for demos and
    /// tests; never where the endpoints' URLs come from people you do not trust).
    #[arg(long, env = "ROLLCALL_OUTBOUND_ALLOW_PRIVATE", default_value = "false", value_name = "BOOL",
        action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub outbound_allow_private: bool,
    /// The wait after a change's first failed delivery to an endpoint; it doubles with each failure,
    /// up to an hour.
    #[arg(long, env = "ROLLCALL_OUTBOUND_FIRST_RETRY", default_value = "5s", value_name = "DURATION",
        value_parser = parse_setting_duration)]
    pub outbound_first_retry: Duration,
    /// How long a change may keep failing before its endpoint is disabled.
    #[arg(long, env = "ROLLCALL_OUTBOUND_GIVE_UP", default_value = "3d", value_name = "DURATION",
        value_parser = parse_setting_duration)]
    pub outbound_give_up: Duration,
    /// How long the Events API tail waits between catch-ups when nothing wakes it (0: no tail).
    #[arg(long, env = "ROLLCALL_EVENTS_POLL_INTERVAL", default_value = "5s", value_name = "DURATION",
        value_parser = parse_setting_duration)]
    pub events_poll_interval: Duration,
}

/// Where Rollcall takes directory events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventSource {
    /// Signed webhooks alone; no Events API tail.
    Webhooks,
    /// The Events API tail alone: a verified webhook only wakes it, its body is not stored.
    Events,
    /// Both: each event is stored and applied once, whichever path brings it first.
    Both,
}

/// The schedule of full pulls when `RESYNC_INTERVAL` is not set and no tail runs.
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(3600);
/// The schedule of full pulls when `RESYNC_INTERVAL` is not set and the tail runs: the tail repairs
/// missed webhooks within seconds, so a full pull only catches what no event reports (a provider that
/// sends no deletion when a group leaves the app).
pub const DEFAULT_RESYNC_INTERVAL_WITH_TAIL: Duration = Duration::from_secs(86_400);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The shortest operator token accepted: a shorter one is guessable.
pub const MIN_OPERATOR_TOKEN_LEN: usize = 32;

/// The shortest webhook secret accepted: whoever guesses the secret can sign events that provision and
/// deprovision members. The broker's secrets are far longer.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// The widest webhook tolerance accepted: a signed request can be replayed while it is within the
/// tolerance, and the broker signs each delivery as it sends it.
pub const MAX_WEBHOOK_TOLERANCE: Duration = Duration::from_secs(3600);

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

/// A setting that could not be used, named by its environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    fn new(setting: &str, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.to_string(),
            problem: problem.into(),
        }
    }

    /// The setting a command-line parsing error is about, named by its environment variable; none when
    /// the error is about no setting (an unknown option, `--help`).
    pub fn from_clap(error: &clap::Error) -> Option<Self> {
        use clap::error::{ContextKind, ContextValue};
        let Some(ContextValue::String(option)) = error.get(ContextKind::InvalidArg) else {
            return None;
        };
        let mut command = Settings::command();
        command.build();
        let arg = command
            .get_arguments()
            .find(|arg| arg.to_string() == *option)?;
        let setting = arg.get_env()?.to_string_lossy();
        let value = match error.get(ContextKind::InvalidValue) {
            Some(ContextValue::String(value)) if !value.is_empty() => Some(value.as_str()),
            _ => None,
        };
        let problem = match std::error::Error::source(error) {
            Some(why) => match value {
                Some(value) if !why.to_string().contains(value) => format!("{value:?}: {why}"),
                _ => why.to_string(),
            },
            None => {
                let rendered = error.render().to_string();
                let first = rendered.split("\n\n").next().unwrap_or_default();
                first.trim_start_matches("error: ").trim().to_string()
            }
        };
        // The value is quoted as the message shows it: a secret not at all, a database URL without its
        // password.
        let problem = match value {
            Some(value) if arg.is_hide_env_values_set() => {
                let shown = if setting == "DATABASE_URL" {
                    redact_password(value)
                } else {
                    REDACTED.to_string()
                };
                problem.replace(value, &shown)
            }
            _ => problem,
        };
        Some(Self::new(&setting, problem))
    }
}

impl Settings {
    /// The settings as options of a command of their own, each reading its environment variable.
    fn command() -> clap::Command {
        Self::augment_args(clap::Command::new("serve").no_binary_name(true))
    }

    /// Reads the process environment, after loading `.env` if there is one.
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, which returns an environment variable's value if it is set; a
    /// blank value counts as unset, and an unset one takes its default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let command = Self::command();
        let given: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| {
                let value = lookup(arg.get_env()?.to_str()?).filter(|v| !v.trim().is_empty())?;
                Some(format!("--{}={value}", arg.get_long()?))
            })
            .collect();
        let matches = command
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(given)
            .and_then(|matches| Self::from_arg_matches(&matches));
        matches
            .map_err(|error| {
                ConfigError::from_clap(&error)
                    .unwrap_or_else(|| ConfigError::new("(unknown)", error.to_string()))
            })?
            .checked()
    }

    /// The settings with secrets trimmed and blank ones dropped, once every value read is usable: no
    /// secret is an example's placeholder and the operator token is long enough.
    pub fn checked(mut self) -> Result<Self, ConfigError> {
        self.webhook_secrets = self.webhook_secrets.iter().filter_map(trimmed).collect();
        self.workos_api_key = self.workos_api_key.as_ref().and_then(trimmed);
        self.operator_token = self.operator_token.as_ref().and_then(trimmed);
        refuse_placeholders("WORKOS_WEBHOOK_SECRETS", &self.webhook_secrets)?;
        refuse_placeholders("WORKOS_API_KEY", &self.workos_api_key)?;
        refuse_placeholders("ROLLCALL_OPERATOR_TOKEN", &self.operator_token)?;
        self.check_event_source()?;
        if self
            .webhook_secrets
            .iter()
            .any(|s| s.expose_secret().chars().count() < MIN_WEBHOOK_SECRET_LEN)
        {
            return Err(ConfigError::new(
                "WORKOS_WEBHOOK_SECRETS",
                format!(
                    "holds a secret shorter than {MIN_WEBHOOK_SECRET_LEN} characters; use the signing secret \
                     the broker shows for the webhook endpoint"
                ),
            ));
        }
        if self
            .operator_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().chars().count() < MIN_OPERATOR_TOKEN_LEN)
        {
            return Err(ConfigError::new(
                "ROLLCALL_OPERATOR_TOKEN",
                format!(
                    "is shorter than {MIN_OPERATOR_TOKEN_LEN} characters; use a long random value, such as `openssl rand -hex 32` prints"
                ),
            ));
        }
        Ok(self)
    }

    /// Where events come from: as set, else `both` with an API key and `webhooks` without.
    pub fn event_source(&self) -> EventSource {
        match (self.event_source, &self.workos_api_key) {
            (Some(source), _) => source,
            (None, Some(_)) => EventSource::Both,
            (None, None) => EventSource::Webhooks,
        }
    }

    /// Whether the Events API tail runs: an API key, a source that takes events, and a poll interval.
    pub fn event_tail_enabled(&self) -> bool {
        self.workos_api_key.is_some()
            && self.event_source() != EventSource::Webhooks
            && !self.events_poll_interval.is_zero()
    }

    /// Whether verified webhook bodies are stored: always, but with `ROLLCALL_EVENT_SOURCE=events` while
    /// the tail runs (without a tail they are the only source, whatever the settings say).
    pub fn stores_webhooks(&self) -> bool {
        self.event_source() != EventSource::Events || !self.event_tail_enabled()
    }

    /// How often every directory is pulled in full: `RESYNC_INTERVAL` when set, else hourly, or daily
    /// while the tail runs.
    pub fn resync_interval(&self) -> Duration {
        match self.resync_interval {
            Some(interval) => interval,
            None if self.event_tail_enabled() => DEFAULT_RESYNC_INTERVAL_WITH_TAIL,
            None => DEFAULT_RESYNC_INTERVAL,
        }
    }

    /// Refuses a source the other settings cannot serve: the Events API needs an API key, and the tail
    /// alone needs a poll interval.
    fn check_event_source(&self) -> Result<(), ConfigError> {
        let source = self.event_source();
        if source != EventSource::Webhooks && self.workos_api_key.is_none() {
            return Err(ConfigError::new(
                "ROLLCALL_EVENT_SOURCE",
                format!(
                    "{} reads the Events API, which needs WORKOS_API_KEY; set it, or use webhooks",
                    source.name()
                ),
            ));
        }
        if source == EventSource::Events && self.events_poll_interval.is_zero() {
            return Err(ConfigError::new(
                "ROLLCALL_EVENTS_POLL_INTERVAL",
                "is 0 (no tail) while ROLLCALL_EVENT_SOURCE=events takes events from the tail alone; \
                 set an interval such as 5s, or use ROLLCALL_EVENT_SOURCE=webhooks",
            ));
        }
        Ok(())
    }

    /// Forgets the settings' environment variables that are set but blank (`WORKOS_API_KEY=` in `.env`),
    /// so that they count as unset when the command line is read, as [`Settings::from_lookup`] has it.
    /// Call it before other threads read the environment.
    pub fn forget_blank_variables() {
        for arg in Self::command().get_arguments() {
            if let Some(name) = arg.get_env() {
                if std::env::var_os(name).is_some_and(|v| v.to_string_lossy().trim().is_empty()) {
                    std::env::remove_var(name);
                }
            }
        }
    }
}

impl EventSource {
    /// The setting's value.
    pub fn name(self) -> &'static str {
        match self {
            EventSource::Webhooks => "webhooks",
            EventSource::Events => "events",
            EventSource::Both => "both",
        }
    }
}

/// Refuses a secret setting whose value, or one of whose values, is an example's placeholder.
fn refuse_placeholders<'a>(
    setting: &str,
    values: impl IntoIterator<Item = &'a SecretString>,
) -> Result<(), ConfigError> {
    if values
        .into_iter()
        .any(|v| is_placeholder(v.expose_secret()))
    {
        return Err(ConfigError::new(
            setting,
            "is a placeholder from an example, not a real secret; set the real value",
        ));
    }
    Ok(())
}

fn resolve_bind(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let text = text.trim();
    text.to_socket_addrs()
        .map_err(|e| format!("{text:?} is not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

fn http_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with("http://") || text.starts_with("https://") {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not an http(s) URL"))
    }
}

fn body_limit(text: &str) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1024)
        .ok_or_else(|| "must be a whole number of bytes, at least 1024".into())
}

fn webhook_tolerance(text: &str) -> Result<Duration, String> {
    let tolerance = parse_setting_duration(text)?;
    if tolerance.is_zero() || tolerance > MAX_WEBHOOK_TOLERANCE {
        return Err(
            "must be more than 0 and at most 1h (a signed request can be replayed for this long), \
             such as 180s"
                .into(),
        );
    }
    Ok(tolerance)
}

fn body_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_setting_duration(text)?;
    if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&timeout) {
        return Err("must be between 1s and 5m, such as 10s".into());
    }
    Ok(timeout)
}

fn listing_rate(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| "must be requests per second, such as 4 (0: no limit)".into())
}

fn share(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| (0.0..=1.0).contains(v))
        .ok_or_else(|| "must be a share between 0 and 1, such as 0.2".into())
}

/// Reads a setting's duration such as `90s`, `30m`, `1h30m` or `30d`; a plain number is seconds, and `0`
/// is none.
pub fn parse_setting_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("{text:?} is too long"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration such as 90s, 30m, 1h30m or 30d ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The secrets' values, to compare.
    fn exposed<'a>(secrets: impl IntoIterator<Item = &'a SecretString>) -> Vec<&'a str> {
        secrets.into_iter().map(|s| s.expose_secret()).collect()
    }

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
        assert_eq!(s.webhook_body_timeout, Duration::from_secs(10));
        assert_eq!(s.max_connections, 4096);
        assert_eq!(s.resync_interval(), Duration::from_secs(3600));
        assert_eq!(s.event_source(), EventSource::Webhooks);
        assert!(!s.event_tail_enabled());
        assert_eq!(s.user_listing_rate, 4.0);
        assert_eq!(s.scim_rate, 100);
        assert_eq!(s.scim_body_limit, 1 << 20);
    }

    #[test]
    fn secrets_are_a_comma_separated_list() {
        let s = settings(&[(
            "WORKOS_WEBHOOK_SECRETS",
            " whsec_old_0123456789 , whsec_new_0123456789 ,",
        )])
        .unwrap();
        assert_eq!(
            exposed(&s.webhook_secrets),
            ["whsec_old_0123456789", "whsec_new_0123456789"]
        );
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
            ("ROLLCALL_EVENT_SOURCE", "carrier-pigeon"),
            ("ROLLCALL_EVENTS_POLL_INTERVAL", "often"),
            ("ROLLCALL_WEBHOOK_BODY_TIMEOUT", "0"),
            ("ROLLCALL_WEBHOOK_BODY_TIMEOUT", "1h"),
            ("ROLLCALL_MAX_CONNECTIONS", "10"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert_eq!(error.setting, name);
            assert!(error.to_string().contains(name));
        }
    }

    #[test]
    fn setting_durations_are_read_as_humans_write_them() {
        for (text, seconds) in [
            ("0", 0),
            ("90", 90),
            ("1h30m", 5400),
            ("1d", 86_400),
            ("2w", 1_209_600),
        ] {
            assert_eq!(
                parse_setting_duration(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
        assert!(parse_setting_duration("1 fortnight").is_err());
        assert!(parse_setting_duration("-5").is_err());
        assert!(parse_setting_duration("18446744073709551616").is_err());
    }

    #[test]
    fn blank_values_take_the_default() {
        let s = settings(&[("RESYNC_INTERVAL", " "), ("WORKOS_API_KEY", "")]).unwrap();
        assert_eq!(s.resync_interval(), Duration::from_secs(3600));
        assert_eq!(s.event_source(), EventSource::Webhooks);
        assert!(!s.event_tail_enabled());
        assert!(s.workos_api_key.is_none());
        let s = settings(&[
            ("RESYNC_INTERVAL", " 1h30m "),
            ("ROLLCALL_EVENT_RETENTION", "1d"),
        ])
        .unwrap();
        assert_eq!(s.resync_interval(), Duration::from_secs(5400));
        assert_eq!(s.event_retention, Duration::from_secs(86_400));
    }

    #[test]
    fn every_setting_is_an_option_with_its_variable_and_an_explanation() {
        let command = Settings::command();
        for arg in command.get_arguments() {
            let long = arg.get_long().expect("an option");
            assert!(arg.get_env().is_some(), "--{long} reads no variable");
            assert!(arg.get_help().is_some(), "--{long} is not explained");
        }
        let help = Settings::command().render_long_help().to_string();
        for name in ["DATABASE_URL", "RESYNC_INTERVAL", "ROLLCALL_OPERATOR_TOKEN"] {
            assert!(help.contains(name), "{name} in {help}");
        }
        assert!(help.contains("[default: 180s]"), "{help}");
        assert!(
            help.contains("1h, or 1d while the Events API tail runs"),
            "{help}"
        );
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
    fn outbound_webhooks_default_to_public_https_and_three_days() {
        let s = settings(&[]).unwrap();
        assert!(!s.outbound_allow_private);
        assert_eq!(s.outbound_first_retry, Duration::from_secs(5));
        assert_eq!(s.outbound_give_up, Duration::from_secs(3 * 86_400));
        let s = settings(&[
            ("ROLLCALL_OUTBOUND_ALLOW_PRIVATE", "true"),
            ("ROLLCALL_OUTBOUND_FIRST_RETRY", "250ms"),
        ])
        .unwrap();
        assert!(s.outbound_allow_private);
        assert_eq!(s.outbound_first_retry, Duration::from_millis(250));
        let error = settings(&[("ROLLCALL_OUTBOUND_GIVE_UP", "later")]).unwrap_err();
        assert_eq!(error.setting, "ROLLCALL_OUTBOUND_GIVE_UP");
    }

    #[test]
    fn a_short_operator_token_is_refused() {
        let error = settings(&[("ROLLCALL_OPERATOR_TOKEN", &TOKEN[1..])]).unwrap_err();
        assert_eq!(error.setting, "ROLLCALL_OPERATOR_TOKEN");
        assert!(error.to_string().contains("32 characters"), "{error}");
        assert!(!error.to_string().contains(&TOKEN[1..]));
        let s = settings(&[("ROLLCALL_OPERATOR_TOKEN", TOKEN)]).unwrap();
        assert_eq!(exposed(&s.operator_token), [TOKEN]);
    }

    #[test]
    fn a_short_webhook_secret_is_refused_by_name() {
        for (value, short) in [
            ("k1", "k1"),
            ("whsec_012345678", "whsec_012345678"),
            ("whsec_old_0123456789,tiny_one", "tiny_one"),
        ] {
            let error = settings(&[("WORKOS_WEBHOOK_SECRETS", value)]).unwrap_err();
            assert_eq!(error.setting, "WORKOS_WEBHOOK_SECRETS", "{value}");
            assert!(error.problem.contains("16 characters"), "{error}");
            assert!(!error.problem.contains(short), "{error}");
        }
        let sixteen = "0123456789abcdef";
        let s = settings(&[("WORKOS_WEBHOOK_SECRETS", sixteen)]).unwrap();
        assert_eq!(exposed(&s.webhook_secrets), [sixteen]);
    }

    #[test]
    fn a_webhook_tolerance_over_an_hour_is_refused_by_name() {
        for value in ["3650d", "1h1s", "0"] {
            let error = settings(&[("WORKOS_WEBHOOK_TOLERANCE", value)]).unwrap_err();
            assert_eq!(error.setting, "WORKOS_WEBHOOK_TOLERANCE", "{value}");
            assert!(error.problem.contains("at most 1h"), "{error}");
        }
        let s = settings(&[("WORKOS_WEBHOOK_TOLERANCE", "1h")]).unwrap();
        assert_eq!(s.webhook_tolerance, MAX_WEBHOOK_TOLERANCE);
    }

    #[test]
    fn a_database_url_of_another_scheme_is_named_without_its_password() {
        let error = settings(&[(
            "DATABASE_URL",
            "mysql://app:s3cret-pass@db.internal/rollcall",
        )])
        .unwrap_err();
        assert_eq!(error.setting, "DATABASE_URL");
        let message = error.to_string();
        assert!(!message.contains("s3cret"), "{message}");
        assert!(
            message.contains("mysql://app:[redacted]@db.internal/rollcall"),
            "{message}"
        );
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let s = settings(&[
            ("ROLLCALL_OPERATOR_TOKEN", TOKEN),
            (
                "WORKOS_WEBHOOK_SECRETS",
                "whsec_old_0123456789,whsec_new_0123456789",
            ),
            ("WORKOS_API_KEY", "sk_live_key"),
            ("DATABASE_URL", "postgres://app:s3cret@db/rollcall"),
        ])
        .unwrap();
        let printed = format!("{s:?}");
        for secret in [
            TOKEN,
            "whsec_old_0123456789",
            "whsec_new_0123456789",
            "sk_live_key",
            "s3cret",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("REDACTED"), "{printed}");
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
        let parse = parse_setting_duration;
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse("soon").is_err());
        assert!(parse("18446744073709551615d").is_err());
        assert!(parse("999999999999999999d").is_err());
        let retention = settings(&[("ROLLCALL_EVENT_RETENTION", "soon")]).unwrap_err();
        assert_eq!(retention.setting, "ROLLCALL_EVENT_RETENTION");
    }

    #[test]
    fn the_event_source_follows_the_api_key_unless_set() {
        let key = ("WORKOS_API_KEY", "sk_test_tail");
        let s = settings(&[key]).unwrap();
        assert_eq!(s.event_source(), EventSource::Both);
        assert!(s.event_tail_enabled() && s.stores_webhooks());
        assert_eq!(s.events_poll_interval, Duration::from_secs(5));
        let s = settings(&[key, ("ROLLCALL_EVENT_SOURCE", "events")]).unwrap();
        assert!(s.event_tail_enabled() && !s.stores_webhooks());
        let s = settings(&[key, ("ROLLCALL_EVENT_SOURCE", "webhooks")]).unwrap();
        assert!(!s.event_tail_enabled() && s.stores_webhooks());
        let s = settings(&[key, ("ROLLCALL_EVENTS_POLL_INTERVAL", "0")]).unwrap();
        assert!(!s.event_tail_enabled());
        let s = settings(&[key, ("ROLLCALL_EVENTS_POLL_INTERVAL", "750ms")]).unwrap();
        assert_eq!(s.events_poll_interval, Duration::from_millis(750));
    }

    #[test]
    fn an_event_source_the_settings_cannot_serve_is_refused_by_name() {
        for source in ["events", "both"] {
            let error = settings(&[("ROLLCALL_EVENT_SOURCE", source)]).unwrap_err();
            assert_eq!(error.setting, "ROLLCALL_EVENT_SOURCE", "{source}");
            assert!(error.problem.contains("WORKOS_API_KEY"), "{error}");
        }
        let error = settings(&[
            ("WORKOS_API_KEY", "sk_test_tail"),
            ("ROLLCALL_EVENT_SOURCE", "events"),
            ("ROLLCALL_EVENTS_POLL_INTERVAL", "0"),
        ])
        .unwrap_err();
        assert_eq!(error.setting, "ROLLCALL_EVENTS_POLL_INTERVAL");
    }

    #[test]
    fn full_pulls_become_daily_with_the_tail_unless_set() {
        let key = ("WORKOS_API_KEY", "sk_test_tail");
        assert_eq!(
            settings(&[key]).unwrap().resync_interval(),
            Duration::from_secs(86_400)
        );
        let off = ("ROLLCALL_EVENTS_POLL_INTERVAL", "0");
        assert_eq!(
            settings(&[key, off]).unwrap().resync_interval(),
            Duration::from_secs(3600)
        );
        let set = ("RESYNC_INTERVAL", "2h");
        assert_eq!(
            settings(&[key, set]).unwrap().resync_interval(),
            Duration::from_secs(7200)
        );
        let never = ("RESYNC_INTERVAL", "0");
        assert_eq!(
            settings(&[key, never]).unwrap().resync_interval(),
            Duration::ZERO
        );
    }
}
