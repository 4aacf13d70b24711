//! `rollcall dev-broker`: a local stand-in for the broker (WorkOS Directory Sync) for development, demos
//! and tests. It holds a directory in memory, answers the pull API in the broker's shapes, and sends
//! signed `dsync.*` webhooks for every change made through its control API under `/_dev/`.
//!
//! Pull API (bearer `--api-key`): `GET /directories[?organization_id=]`, `/directories/{id}`,
//! `/directory_users?directory=|group=`, `/directory_users/{id}`, `/directory_groups?directory=|user=`,
//! `/directory_groups/{id}`; lists take `limit` (1..100), `after`, `before`, `order` (asc|desc|normal).
//!
//! Events API (same auth): `GET /events?events=dsync.user.created,…&after=<event id>|range_start=<time>
//! &range_end=<time>&limit=1..100&organization_id=`: every event generated (webhooks dropped included),
//! oldest first whatever `order` says, for `--event-retention`; a cursor or `range_start` outside it is a 400.
//!
//! Control API (no auth, JSON): `GET /_dev/state`, `/_dev/truth`, `/_dev/events[?since=N]`,
//! `POST /_dev/events/expire {before: <event id or time>} | {through: <event id>} | {all: true}`,
//! `GET|POST /_dev/faults`, `POST /_dev/random-changes {count}`, `POST /_dev/users`,
//! `PATCH|DELETE /_dev/users/{id}`, `POST /_dev/users/{id}/deactivate|reactivate`,
//! `POST /_dev/users/{id}/move {from_group, to_group}`, `POST /_dev/groups`,
//! `PATCH /_dev/groups/{id} {name}`, `DELETE /_dev/groups/{id}`, `POST /_dev/groups/{id}/members {user_id}`,
//! `DELETE /_dev/groups/{id}/members/{user_id}`, `PUT /_dev/groups/{id}/role {slug|null}` (the role slug the
//! group gives its members: users carry `roles`, their groups' slugs, else their own `role`, and a change
//! of them is a `dsync.user.updated`).
//!
//! A directory file for `--load` is one JSON object; every key is optional:
//!
//! ```json
//! {
//!   "directories": [{"id": "directory_acme", "organization_id": "org_acme", "type": "okta scim v2.0",
//!                    "name": "Acme", "domain": "acme.test", "created_at": "2025-01-01T00:00:00.000Z"}],
//!   "groups": [{"id": "directory_group_eng", "directory_id": "directory_acme", "name": "Engineering",
//!               "idp_id": "Engineering", "role_slug": "engineer", "created_at": "…", "updated_at": "…"}],
//!   "users": [{"id": "directory_user_ada", "directory_id": "directory_acme", "email": "ada@acme.test",
//!              "first_name": "Ada", "last_name": "Lovelace", "state": "active", "role": "member",
//!              "custom_attributes": {"department": "Engineering"}, "idp_id": "00u1",
//!              "groups": ["Engineering"], "created_at": "…", "updated_at": "…"}]
//! }
//! ```
//!
//! Without `directories`, the directory from the command line is used; `directory_id` defaults to the first
//! directory; users name their groups by id or by name; missing ids, `idp_id`s and times are made up.

mod control;
mod delivery;
mod delivery_record;
mod event_log;
mod events_api;
mod faults;
mod generate;
mod load;
mod model;
mod objects;
mod pull_api;
mod server;
mod shared;

pub use delivery::{RetryPolicy, WebhookTarget};
pub use delivery_record::{Delivery, DeliveryState};
pub use event_log::{
    EventExpiry, EventRecord, EventSummary, DEFAULT_EVENT_LOG_LIMIT, DEFAULT_EVENT_RETENTION,
};
pub use faults::{Faults, FaultsUpdate};
pub use generate::GenerateOptions;
pub use model::{
    Counts, DirectoryModel, DirectoryTruth, ModelError, NewGroup, NewUser, Order, UserChanges,
};
pub use objects::{
    BrokerEvent, DirectoryGroupObject, DirectoryMetadata, DirectoryObject, DirectoryUserObject,
    DomainObject, ListMetadata, ListPage, RoleSlug, UserCounts,
};
pub use server::{DevBroker, DevBrokerConfig, DevBrokerHandle, DirectorySettings, DirectorySource};

use crate::secret::{parse_secret, SecretString};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const MORE_HELP: &str = "\
Pull API (Authorization: Bearer --api-key): GET /directories[?organization_id=], /directories/{id}, \
/directory_users?directory=|group=, /directory_users/{id}, /directory_groups?directory=|user=, \
/directory_groups/{id}; lists take limit (1..100), after, before, order (asc|desc|normal).

Events API (same auth): GET /events?events=<types joined by ,>&after=<event id>|range_start=<ISO-8601>\
&range_end=<ISO-8601>&limit=1..100&organization_id=: every event generated (dropped webhooks included), oldest \
first whatever order says; a cursor or range_start outside --event-retention is answered 400.

Control API (no auth, JSON): GET /_dev/state, /_dev/truth, /_dev/events[?since=N]; POST /_dev/events/expire \
{before: <event id or time>} | {through: <event id>} | {all: true}; GET|POST /_dev/faults \
{rate_429, rate_500, rate_limit, drop, duplicate, delay_ms, reorder, reorder_window}; \
POST /_dev/random-changes {count}; POST /_dev/users {first_name, last_name, email, state, role, \
custom_attributes, groups}; PATCH|DELETE /_dev/users/{id}; POST /_dev/users/{id}/deactivate|reactivate; \
POST /_dev/users/{id}/move {from_group, to_group}; POST /_dev/groups {name}; PATCH /_dev/groups/{id} {name}; \
DELETE /_dev/groups/{id}; POST /_dev/groups/{id}/members {user_id}; DELETE /_dev/groups/{id}/members/{user_id}; \
PUT /_dev/groups/{id}/role {slug|null} (the role slug the group gives its members: users carry roles, their \
groups' slugs, else their own role; a change of them is a dsync.user.updated).

--load FILE: {\"directories\": [{id, organization_id, type, name, domain, created_at}], \
\"groups\": [{id, directory_id, name, idp_id, created_at, updated_at}], \
\"users\": [{id, directory_id, email, first_name, last_name, state, role, custom_attributes, idp_id, \
groups: [group id or name], created_at, updated_at}]}. Every key is optional: without directories, the one \
from --directory-id and the flags after it is used; directory_id defaults to the first directory; missing ids, \
idp_ids and times are made up.";

/// Serve a local broker: the pull API, the Events API and signed webhooks, for development, demos and tests.
///
/// The directory is generated (--users, --groups, --seed) or loaded (--load). Change it through the
/// control API under /_dev/ (no auth): users, groups, memberships, random changes, faults; each change
/// sends the `dsync.*` event the broker would, signed, to --webhook-url.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = MORE_HELP)]
pub struct DevBrokerArgs {
    /// The flags, boxed so the command enum stays small.
    #[command(flatten)]
    pub flags: Box<DevBrokerFlags>,
}

/// The flags of `rollcall dev-broker`.
#[derive(Debug, Clone, Args)]
pub struct DevBrokerFlags {
    /// Where to listen (port 0: any free port); the bound address is printed. Loopback only, unless
    /// --allow-remote.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub bind: SocketAddr,
    /// Listen on an address other than loopback. The control API has no auth: anyone who reaches it can
    /// change the directory.
    #[arg(long)]
    pub allow_remote: bool,
    /// How many events /_dev/events and the Events API keep; past it, the oldest are forgotten.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_EVENT_LOG_LIMIT as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_events: u64,
    /// How long the Events API (GET /events) serves an event, such as 30d or 90s; events forgotten past
    /// --max-events are gone sooner.
    #[arg(long, value_name = "DURATION", default_value = "30d",
          value_parser = crate::config::parse_setting_duration)]
    pub event_retention: Duration,
    /// The API key the pull API accepts as `Authorization: Bearer …`.
    #[arg(long, default_value = "sk_test_dev", value_parser = parse_secret)]
    pub api_key: SecretString,
    /// The id of the directory made when none is loaded.
    #[arg(long, default_value = "directory_dev")]
    pub directory_id: String,
    /// The organization of that directory.
    #[arg(long, default_value = "org_dev")]
    pub organization_id: String,
    /// The directory's provider type, such as `azure scim v2.0` or `gsuite directory`.
    #[arg(long, default_value = "okta scim v2.0")]
    pub directory_type: String,
    /// The directory's name.
    #[arg(long, default_value = "Dev Directory")]
    pub directory_name: String,
    /// The email domain of generated users.
    #[arg(long, default_value = "example.com")]
    pub domain: String,
    /// How many users to generate.
    #[arg(long, default_value_t = 50, conflicts_with = "load")]
    pub users: u32,
    /// How many groups to generate.
    #[arg(long, default_value_t = 10, conflicts_with = "load")]
    pub groups: u32,
    /// How many groups a generated user is in, on average.
    #[arg(long, default_value_t = 3.0, conflicts_with = "load")]
    pub memberships_per_user: f64,
    /// The share of generated users that are inactive (0 to 1).
    #[arg(long, default_value_t = 0.0, value_parser = probability, conflicts_with = "load")]
    pub inactive_share: f64,
    /// Seeds generated data, ids, injected faults and delivery decisions: a seed gives the same run.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Load the directory from a JSON file instead of generating it (format below).
    #[arg(long, value_name = "FILE")]
    pub load: Option<PathBuf>,
    /// Fill the deprecated `groups[]` of directory users with their groups (default: empty, as since 2026-05).
    #[arg(long)]
    pub fill_user_groups: bool,
    /// Share of list requests answered 429 `"Ratelimited"` (every other one with `Retry-After: 1`).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    pub rate_429: f64,
    /// Share of list requests answered 500.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    pub rate_500: f64,
    /// Allow R requests per second on /directory_users per directory, 429 beyond (the broker allows 4).
    #[arg(long, value_name = "R")]
    pub rate_limit: Option<u32>,
    /// Where to POST signed events; without it, events are only logged at /_dev/events.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// The secret events are signed with (`WorkOS-Signature: t=…, v1=…`).
    #[arg(long, default_value = "whsec_dev_broker_local", value_parser = parse_secret)]
    pub webhook_secret: SecretString,
    /// Share of events never delivered.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    pub drop: f64,
    /// Share of events delivered twice.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    pub duplicate: f64,
    /// Delay each delivery by a random time up to MAX milliseconds (deliveries then overtake each other).
    #[arg(long, value_name = "MAX", default_value_t = 0)]
    pub delay_ms: u64,
    /// Shuffle events within windows of --reorder-window before sending.
    #[arg(long)]
    pub reorder: bool,
    /// How many events a reordering window holds.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(2..))]
    pub reorder_window: u16,
    /// How many times a delivery answered non-2xx is retried.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// The wait before the first retry, doubled for each next one.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub retry_backoff_ms: u64,
}

fn probability(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    faults::probability("value", value).map_err(|(_, message)| message)
}

impl DevBrokerArgs {
    /// The configuration these arguments describe.
    pub fn config(&self) -> DevBrokerConfig {
        self.flags.config()
    }
}

impl DevBrokerFlags {
    /// The configuration these flags describe.
    pub fn config(&self) -> DevBrokerConfig {
        DevBrokerConfig {
            bind: self.bind,
            api_key: self.api_key.clone(),
            directory: DirectorySettings {
                id: self.directory_id.clone(),
                organization_id: self.organization_id.clone(),
                directory_type: self.directory_type.clone(),
                name: self.directory_name.clone(),
                domain: self.domain.clone(),
            },
            source: match &self.load {
                Some(path) => DirectorySource::Load(path.clone()),
                None => DirectorySource::Generate(GenerateOptions {
                    users: self.users,
                    groups: self.groups,
                    memberships_per_user: self.memberships_per_user,
                    inactive_share: self.inactive_share,
                }),
            },
            seed: self.seed,
            fill_user_groups: self.fill_user_groups,
            faults: Faults {
                rate_429: self.rate_429,
                rate_500: self.rate_500,
                rate_limit: self.rate_limit.filter(|&r| r > 0),
                drop: self.drop,
                duplicate: self.duplicate,
                delay_ms: self.delay_ms,
                reorder: self.reorder,
                reorder_window: self.reorder_window as usize,
            },
            webhook: self.webhook_url.as_ref().map(|url| WebhookTarget {
                url: url.clone(),
                secret: self.webhook_secret.clone(),
            }),
            retry: RetryPolicy {
                retries: self.retries,
                backoff: Duration::from_millis(self.retry_backoff_ms),
            },
            workers: 2,
            allow_remote: self.allow_remote,
            max_events: usize::try_from(self.max_events).unwrap_or(usize::MAX),
            event_retention: self.event_retention,
        }
    }
}

/// Runs `rollcall dev-broker` until Ctrl-C or SIGTERM.
pub async fn run(args: DevBrokerArgs) -> anyhow::Result<()> {
    crate::telemetry::init(crate::config::LogFormat::Text);
    eprintln!(
        "dev-broker: for development and tests only, never for production (no auth on /_dev/, data in memory)"
    );
    let started = std::time::Instant::now();
    let handle = DevBroker::start(args.config()).await?;
    let counts = handle.counts();
    println!(
        "dev-broker listening on {} (directory {}: {} users, {} groups, {} memberships, ready in {:.1}s)",
        handle.base_url,
        handle.directory_id,
        counts.users,
        counts.groups,
        counts.memberships,
        started.elapsed().as_secs_f64()
    );
    println!(
        "pull API: Authorization: Bearer {}; control API: {}/_dev/state; webhooks: {}",
        handle.api_key,
        handle.base_url,
        args.flags
            .webhook_url
            .as_deref()
            .unwrap_or("none (see /_dev/events)")
    );
    shutdown_signal().await;
    eprintln!("dev-broker stopping");
    handle.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: DevBrokerArgs,
    }

    #[test]
    fn its_key_and_secret_never_show_in_debug_output() {
        let command = Command::try_parse_from([
            "dev-broker",
            "--api-key",
            "sk_test_hidden",
            "--webhook-url",
            "http://127.0.0.1:1/webhooks/workos",
            "--webhook-secret",
            "whsec_hidden",
        ])
        .expect("the flags parse");
        let config = command.args.config();
        use crate::secret::ExposeSecret;
        assert_eq!(config.api_key.expose_secret(), "sk_test_hidden");
        for printed in [format!("{:?}", command.args), format!("{config:?}")] {
            assert!(!printed.contains("hidden"), "{printed}");
            assert!(printed.contains("REDACTED"), "{printed}");
        }
    }
}
