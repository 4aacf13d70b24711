//! Starting the dev broker in-process, and the handle that changes and reads its directory.

use super::delivery::{Deliverer, RetryPolicy, WebhookTarget};
use super::event_log::{
    EventExpiry, EventLog, EventRecord, EventSummary, DEFAULT_EVENT_LOG_LIMIT,
    DEFAULT_EVENT_RETENTION,
};
use super::faults::{Faults, FaultsUpdate};
use super::generate::GenerateOptions;
use super::model::*;
use super::objects::*;
use super::shared::Shared;
use super::{control, events_api, load, pull_api};
use crate::secret::{ExposeSecret, SecretString};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where the directory comes from.
#[derive(Debug, Clone)]
pub enum DirectorySource {
    Generate(GenerateOptions),
    /// A JSON file in the format of [`super`]'s documentation.
    Load(PathBuf),
}

/// The directory made when none is loaded.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    pub id: String,
    pub organization_id: String,
    pub directory_type: String,
    pub name: String,
    pub domain: String,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        Self {
            id: "directory_dev".into(),
            organization_id: "org_dev".into(),
            directory_type: "okta scim v2.0".into(),
            name: "Dev Directory".into(),
            domain: "example.com".into(),
        }
    }
}

/// Everything the dev broker needs to start.
#[derive(Debug, Clone)]
pub struct DevBrokerConfig {
    pub bind: SocketAddr,
    /// The key the pull API accepts as `Authorization: Bearer …`.
    pub api_key: SecretString,
    pub directory: DirectorySettings,
    pub source: DirectorySource,
    /// Seeds generated data, ids, faults and delivery decisions.
    pub seed: u64,
    /// Fill the deprecated `groups[]` of users in the pull API.
    pub fill_user_groups: bool,
    pub faults: Faults,
    /// Where events are posted; none: events are only logged.
    pub webhook: Option<WebhookTarget>,
    pub retry: RetryPolicy,
    /// HTTP worker threads.
    pub workers: usize,
    /// Listen on an address other than loopback: the control API has no auth, so only on purpose.
    pub allow_remote: bool,
    /// How many events are kept for `/_dev/events` and the Events API, the oldest forgotten first.
    pub max_events: usize,
    /// How long the Events API serves an event.
    pub event_retention: Duration,
}

impl Default for DevBrokerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:0".parse().expect("a socket address"),
            api_key: "sk_test_dev".into(),
            directory: DirectorySettings::default(),
            source: DirectorySource::Generate(GenerateOptions {
                users: 50,
                groups: 10,
                memberships_per_user: 3.0,
                inactive_share: 0.0,
            }),
            seed: 1,
            fill_user_groups: false,
            faults: Faults::default(),
            webhook: None,
            retry: RetryPolicy::default(),
            workers: 2,
            allow_remote: false,
            max_events: DEFAULT_EVENT_LOG_LIMIT,
            event_retention: DEFAULT_EVENT_RETENTION,
        }
    }
}

/// Starts dev brokers.
pub struct DevBroker;

impl DevBroker {
    /// Builds the directory, binds, and serves in the background until the handle is stopped or dropped.
    pub async fn start(config: DevBrokerConfig) -> anyhow::Result<DevBrokerHandle> {
        anyhow::ensure!(
            config.allow_remote || config.bind.ip().is_loopback(),
            "the dev broker will not listen on {}: it is a development tool whose control API has no \
             auth; bind it to loopback (127.0.0.1 or [::1]), or allow remote clients on purpose with \
             `rollcall dev-broker --allow-remote`",
            config.bind
        );
        let clock = BrokerClock::default();
        let mut model = DirectoryModel::new(config.seed).with_clock(clock.clone());
        let directory = NewDirectory {
            id: config.directory.id.clone(),
            organization_id: config.directory.organization_id.clone(),
            directory_type: config.directory.directory_type.clone(),
            name: config.directory.name.clone(),
            domain: Some(config.directory.domain.clone()),
            created_at: parse_time("2025-01-06T08:30:00.000Z").unwrap_or_default(),
        };
        match &config.source {
            DirectorySource::Generate(options) => {
                let slot = model.add_directory(directory)?;
                model.populate(slot, options)?;
            }
            DirectorySource::Load(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let file: load::DirectoryFile = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a directory file", path.display()))?;
                load::load(&mut model, file, directory)
                    .with_context(|| format!("loading {}", path.display()))?;
            }
        }

        let stop = CancellationToken::new();
        let log = Arc::new(
            EventLog::new(config.max_events, config.event_retention).with_clock(clock.clone()),
        );
        let faults = Arc::new(RwLock::new(config.faults.clone()));
        let queue = match &config.webhook {
            None => None,
            Some(target) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let deliverer = Arc::new(Deliverer {
                    log: log.clone(),
                    faults: faults.clone(),
                    target: target.clone(),
                    retry: config.retry,
                    rng: Mutex::new(StdRng::seed_from_u64(config.seed.wrapping_add(2))),
                    client: reqwest::Client::builder()
                        .timeout(Duration::from_secs(10))
                        .build()
                        .context("building the webhook client")?,
                });
                tokio::spawn(deliverer.run(rx, stop.clone()));
                Some(tx)
            }
        };
        let shared = Arc::new(Shared::new(
            model,
            faults,
            StdRng::seed_from_u64(config.seed.wrapping_add(1)),
            log,
            queue,
            config.api_key.clone(),
            config.fill_user_groups,
        ));

        let listener =
            TcpListener::bind(config.bind).with_context(|| format!("binding {}", config.bind))?;
        let addr = listener.local_addr()?;
        tracing::warn!(%addr, "the dev broker is for development and tests, never for production: its control API has no auth and its directory lives in memory");
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(control::json_config())
                .configure(pull_api::configure)
                .configure(events_api::configure)
                .configure(control::configure)
                .default_service(web::to(pull_api::not_found))
        })
        .workers(config.workers.max(1))
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let server_handle = server.handle();
        tokio::spawn(server);
        Ok(DevBrokerHandle {
            base_url: format!("http://{addr}"),
            addr,
            api_key: config.api_key.expose_secret().to_string(),
            directory_id: config.directory.id,
            shared,
            server: server_handle,
            stop,
        })
    }
}

/// A running dev broker: its address, and direct access to its directory.
pub struct DevBrokerHandle {
    /// `http://host:port`, the base URL of the pull API.
    pub base_url: String,
    pub addr: SocketAddr,
    pub api_key: String,
    /// The directory made from the command line (loaded files may hold others).
    pub directory_id: String,
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
    stop: CancellationToken,
}

type Changed<T> = Result<T, ModelError>;

impl DevBrokerHandle {
    fn change<T>(
        &self,
        f: impl FnOnce(&mut DirectoryModel) -> Result<(T, Vec<BrokerEvent>), ModelError>,
    ) -> Changed<T> {
        self.shared.change(f).map(|(value, _)| value)
    }

    /// Moves the broker's clock ahead by `by`: events age, the retention window and the rate limit's
    /// window move on, as if that much time had passed.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.log.advance_clock(by);
    }

    /// A moment after every event so far and before every later one: a millisecond after the newest
    /// event, with the clock moved a second on, so that a `range_start` or `range_end` at it splits the log
    /// there.
    pub fn mark_time(&self) -> chrono::DateTime<chrono::Utc> {
        let newest = self.shared.log.newest_created_ms();
        let mark = newest.map_or_else(|| self.shared.log.now_ms(), |ms| ms + 1);
        self.advance_clock(Duration::from_secs(1));
        chrono::DateTime::from_timestamp_millis(mark).unwrap_or_default()
    }

    /// Creates a user (`dsync.user.created`, and `user_added` for each of its groups).
    pub fn create_user(&self, new: NewUser) -> Changed<DirectoryUserObject> {
        self.change(|m| m.create_user(new))
    }

    /// Changes a user (`dsync.user.updated`).
    pub fn update_user(&self, id: &str, changes: UserChanges) -> Changed<DirectoryUserObject> {
        self.change(|m| m.update_user(id, changes))
    }

    /// Deactivates a user (`dsync.user.updated` with `state: inactive`).
    pub fn deactivate_user(&self, id: &str) -> Changed<DirectoryUserObject> {
        self.change(|m| m.set_user_state(id, false))
    }

    /// Reactivates a user.
    pub fn reactivate_user(&self, id: &str) -> Changed<DirectoryUserObject> {
        self.change(|m| m.set_user_state(id, true))
    }

    /// Deletes a user (`dsync.user.deleted`).
    pub fn delete_user(&self, id: &str) -> Changed<DirectoryUserObject> {
        self.change(|m| m.delete_user(id))
    }

    /// Creates a group (`dsync.group.created`).
    pub fn create_group(&self, new: NewGroup) -> Changed<DirectoryGroupObject> {
        self.change(|m| m.create_group(new))
    }

    /// Renames a group (`dsync.group.updated`).
    pub fn rename_group(&self, id: &str, name: &str) -> Changed<DirectoryGroupObject> {
        self.change(|m| m.rename_group(id, name))
    }

    /// Sets the role slug a group gives its members (`dsync.user.updated` for each whose roles move).
    pub fn set_group_role(&self, id: &str, slug: Option<&str>) -> Changed<DirectoryGroupObject> {
        self.change(|m| m.set_group_role(id, slug.map(str::to_string)))
    }

    /// Deletes a group (`dsync.group.deleted`, no `user_removed`).
    pub fn delete_group(&self, id: &str) -> Changed<DirectoryGroupObject> {
        self.change(|m| m.delete_group(id))
    }

    /// Adds a user to a group (`dsync.group.user_added`).
    pub fn add_to_group(&self, group_id: &str, user_id: &str) -> Changed<()> {
        self.change(|m| Ok(((), m.add_member(group_id, user_id)?)))
    }

    /// Removes a user from a group (`dsync.group.user_removed`).
    pub fn remove_from_group(&self, group_id: &str, user_id: &str) -> Changed<()> {
        self.change(|m| Ok(((), m.remove_member(group_id, user_id)?)))
    }

    /// Moves a user between groups (`user_removed`, then `user_added`).
    pub fn move_user(&self, user_id: &str, from: &str, to: &str) -> Changed<()> {
        self.change(|m| Ok(((), m.move_member(user_id, from, to)?)))
    }

    /// Applies `count` random changes; returns how many events they produced.
    pub fn random_changes(&self, count: u32) -> usize {
        self.shared.random_changes(count)
    }

    /// Everything the broker holds now.
    pub fn truth(&self) -> DirectoryTruth {
        self.shared.read().truth()
    }

    /// How many objects the broker holds now.
    pub fn counts(&self) -> Counts {
        self.shared.read().counts()
    }

    /// Every event generated so far, oldest first, with its delivery.
    pub fn events(&self) -> Vec<EventRecord> {
        self.shared.log.since(0)
    }

    /// Expires events so the Events API no longer serves them, as `POST /_dev/events/expire` does; returns
    /// the id of the oldest event still served.
    pub fn expire_events(&self, expiry: &EventExpiry) -> Changed<Option<String>> {
        self.shared.log.expire(expiry)
    }

    /// Events by delivery state.
    pub fn event_summary(&self) -> EventSummary {
        self.shared.log.summary()
    }

    /// The fault settings in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Changes the fault settings.
    pub fn set_faults(&self, update: &FaultsUpdate) -> Changed<Faults> {
        self.shared.update_faults(update)
    }

    /// Waits until no event is pending delivery; false if `timeout` passes first.
    pub async fn settle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.log.pending() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops serving and delivering.
    pub async fn stop(self) {
        self.stop.cancel();
        self.server.stop(true).await;
    }
}

impl Drop for DevBrokerHandle {
    fn drop(&mut self) {
        self.stop.cancel();
        // The stop command is sent at once; nothing waits for it here.
        drop(self.server.stop(false));
    }
}
