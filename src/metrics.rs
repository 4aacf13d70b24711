//! The service's metrics, kept in a `prometheus-client` registry and written in the Prometheus text
//! exposition format (version 0.0.4); `GET /metrics` (in the HTTP layer) serves them.
//!
//! Every known label value is created up front, so a scrape lists each series (at 0 until it moves). The
//! applier's backlog is read from the database at each scrape, so it covers every instance sharing it; it
//! and whether the applier runs are passed to [`Metrics::render`].

use crate::domain::{RunStatus, RunTrigger};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Why an asked-for sync run was not started.
pub const RUN_SKIP_REASONS: [&str; 2] = ["in_progress", "too_soon"];
/// The broker's list endpoints: the pull API's and the Events API's.
pub const BROKER_ENDPOINTS: [&str; 4] = [
    "directories",
    "directory_users",
    "directory_groups",
    "events",
];
/// What became of a webhook delivery.
pub const WEBHOOK_OUTCOMES: [&str; 6] = [
    "accepted",
    "unauthorized",
    "bad_request",
    "timeout",
    "too_large",
    "unavailable",
];

/// Upper bounds of the apply-lag histogram's buckets, in seconds.
pub const APPLY_LAG_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the buckets of the webhook answer and broker request times, in seconds.
pub const REQUEST_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Upper bounds of the buckets of waits for database connections and workspace locks, in seconds.
pub const WAIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// The kinds of work that have database connections of their own (see `db::Work`).
pub const WORK_KINDS: [&str; 4] = ["intake", "apply", "pull", "shared"];
/// Upper bounds of the sync-run-duration histogram's buckets, in seconds.
pub const RUN_DURATION_BUCKETS: [f64; 11] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0,
];

/// Why a delivery was skipped (rules 7, 19), as `rollcall_events_skipped` labels it.
pub const SKIP_REASONS: [&str; 5] = [
    "unknown_directory",
    "no_workspace",
    "directory_sync_off",
    "plan_below_growth",
    "organization_mismatch",
];

/// The label value standing for names outside the known ones.
const OTHER: &str = "other";

/// One label, such as `status="held"`.
type Label = [(&'static str, &'static str); 1];
/// Histograms by one label.
type Histograms = Family<Label, Histogram, fn() -> Histogram>;

/// The applier's backlog as the database shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// Stored deliveries not applied yet, new or waiting for a retry.
    pub waiting: i64,
    /// How long the oldest of them has waited since it was received (0 when none waits).
    pub oldest_age: Duration,
    /// The Events API tail's lag, once a tail has read.
    pub event_tail: Option<EventTailLag>,
}

struct Series {
    registry: Registry,
    runs_finished: Family<Label, Counter>,
    runs_started: Family<Label, Counter>,
    runs_skipped: Family<Label, Counter>,
    runs_queued: Gauge,
    runs_running: Gauge,
    run_duration: Histograms,
    broker_requests: Family<Label, Counter>,
    broker_request_duration: Histograms,
    broker_rate_limited: Counter,
    broker_retries: Counter,
    webhooks: Family<Label, Counter>,
    webhook_duration: Histograms,
    apply_lag: Histogram,
    event_tail_pages: Counter,
    event_tail_events: Counter,
    event_tail_cursor_losses: Counter,
    connection_wait: Histograms,
    workspace_lock_wait: Histogram,
    lane_deferrals: Counter,
    events_skipped: Family<Label, Counter>,
}

/// The Events API tail's lag as the database shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EventTailLag {
    /// How old the newest event the tail stored is (by the broker's `created_at`).
    pub newest_event_age: Option<Duration>,
    /// How long ago a catch-up last reached the newest event.
    pub last_poll_age: Option<Duration>,
    /// Whether the tail has read nothing although webhooks brought newer events (see
    /// `event_tail::place::stalled`).
    pub stalled: bool,
}

/// The service's metrics; cheap to clone, clones count into the same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Series>);

impl Default for Metrics {
    fn default() -> Self {
        Self(Arc::new(Series::new()))
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// A family with a series for each of `values` from the start.
fn labelled<M: Clone, C: prometheus_client::metrics::family::MetricConstructor<M>>(
    family: Family<Label, M, C>,
    key: &'static str,
    values: impl IntoIterator<Item = &'static str>,
) -> Family<Label, M, C> {
    for value in values {
        let _ = family.get_or_create(&[(key, value)]);
    }
    family
}

/// Histograms with `buckets`, one for each of `values` of `key` from the start.
fn histograms(
    buckets: fn() -> Histogram,
    key: &'static str,
    values: impl IntoIterator<Item = &'static str>,
) -> Histograms {
    labelled(Family::new_with_constructor(buckets), key, values)
}

/// How a sync run may end, as labels.
fn run_ends() -> impl Iterator<Item = &'static str> {
    RunStatus::ENDED.iter().map(|s| s.as_str())
}

/// `name` when it is one of `known`, else [`OTHER`].
fn known_or_other(known: &[&'static str], name: &str) -> &'static str {
    known.iter().find(|k| **k == name).copied().unwrap_or(OTHER)
}

/// The endpoint of a broker path: `/directory_users?…` is `directory_users`; unknown ones are `other`.
fn broker_endpoint(path: &str) -> &'static str {
    let endpoint = path.trim_start_matches('/').split('/').next().unwrap_or("");
    known_or_other(&BROKER_ENDPOINTS, endpoint)
}

impl Series {
    fn new() -> Self {
        let series = Self {
            registry: Registry::default(),
            runs_finished: labelled(Family::default(), "status", run_ends()),
            runs_started: labelled(
                Family::default(),
                "trigger",
                RunTrigger::ALL.iter().map(|t| t.as_str()),
            ),
            runs_skipped: labelled(Family::default(), "reason", RUN_SKIP_REASONS),
            runs_queued: Gauge::default(),
            runs_running: Gauge::default(),
            run_duration: histograms(
                || Histogram::new(RUN_DURATION_BUCKETS),
                "status",
                run_ends(),
            ),
            broker_requests: labelled(Family::default(), "endpoint", BROKER_ENDPOINTS),
            broker_request_duration: histograms(
                || Histogram::new(REQUEST_BUCKETS),
                "endpoint",
                BROKER_ENDPOINTS,
            ),
            broker_rate_limited: Counter::default(),
            broker_retries: Counter::default(),
            webhooks: labelled(Family::default(), "outcome", WEBHOOK_OUTCOMES),
            webhook_duration: histograms(
                || Histogram::new(REQUEST_BUCKETS),
                "outcome",
                WEBHOOK_OUTCOMES,
            ),
            apply_lag: Histogram::new(APPLY_LAG_BUCKETS),
            event_tail_pages: Counter::default(),
            event_tail_events: Counter::default(),
            event_tail_cursor_losses: Counter::default(),
            connection_wait: histograms(|| Histogram::new(WAIT_BUCKETS), "work", WORK_KINDS),
            workspace_lock_wait: Histogram::new(WAIT_BUCKETS),
            lane_deferrals: Counter::default(),
            events_skipped: labelled(Family::default(), "reason", SKIP_REASONS),
        };
        series.register()
    }

    /// Registers every series; a help text ends without its full stop, which the library adds.
    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "rollcall_sync_runs",
            "Sync runs finished, by how they ended",
            self.runs_finished.clone(),
        );
        r.register(
            "rollcall_sync_runs_started",
            "Sync runs started, by what started them",
            self.runs_started.clone(),
        );
        r.register(
            "rollcall_sync_runs_skipped",
            "Automatic sync runs not started: their directory's run was in progress, or its last automatic pull was less than ROLLCALL_AUTOMATIC_PULL_SPACING ago",
            self.runs_skipped.clone(),
        );
        r.register(
            "rollcall_sync_runs_queued",
            "Sync runs of this process waiting for a pull slot (ROLLCALL_MAX_CONCURRENT_PULLS)",
            self.runs_queued.clone(),
        );
        r.register(
            "rollcall_sync_runs_running",
            "Sync runs running in this process",
            self.runs_running.clone(),
        );
        r.register(
            "rollcall_sync_run_duration_seconds",
            "Time from a sync run starting to its end, by how it ended",
            self.run_duration.clone(),
        );
        r.register(
            "rollcall_broker_requests",
            "HTTP requests sent to the broker's pull and Events APIs, retries included, by endpoint",
            self.broker_requests.clone(),
        );
        r.register(
            "rollcall_broker_request_duration_seconds",
            "Time from sending an HTTP request to the broker's pull or Events API to reading its answer, by endpoint",
            self.broker_request_duration.clone(),
        );
        r.register(
            "rollcall_broker_rate_limited",
            "429 Too Many Requests answers received from the broker",
            self.broker_rate_limited.clone(),
        );
        r.register(
            "rollcall_broker_retries",
            "Broker requests sent again after a 429, a 5xx or a transport error",
            self.broker_retries.clone(),
        );
        r.register(
            "rollcall_webhooks_received",
            "Webhook deliveries answered, by outcome",
            self.webhooks.clone(),
        );
        r.register(
            "rollcall_webhook_duration_seconds",
            "Time from a webhook delivery's request to its answer (for an accepted one, once it is stored), by outcome",
            self.webhook_duration.clone(),
        );
        r.register(
            "rollcall_apply_lag_seconds",
            "Time from receiving a delivery (just before its acknowledgement) to applying it, for the deliveries this process applied",
            self.apply_lag.clone(),
        );
        r.register(
            "rollcall_event_tail_pages",
            "Pages of the broker's Events API this process's tail read",
            self.event_tail_pages.clone(),
        );
        r.register(
            "rollcall_event_tail_events",
            "Events this process's tail read from the broker's Events API (each stored once, whichever path brought it first)",
            self.event_tail_events.clone(),
        );
        r.register(
            "rollcall_event_tail_cursor_losses",
            "Times the tail found its cursor outside the broker's retention and started over from a full pull",
            self.event_tail_cursor_losses.clone(),
        );
        r.register(
            "rollcall_db_connection_wait_seconds",
            "Time waiting for a database connection, by the kind of work that has its own (on SQLite, a write's wait for the single writer)",
            self.connection_wait.clone(),
        );
        r.register(
            "rollcall_workspace_lock_wait_seconds",
            "Time a write waited for its workspace's lock (held by another write of the same workspace)",
            self.workspace_lock_wait.clone(),
        );
        r.register(
            "rollcall_apply_lane_deferrals",
            "Times the applier found a lane's workspace locked by another writer and went on with other lanes",
            self.lane_deferrals.clone(),
        );
        r.register(
            "rollcall_events_skipped",
            "Deliveries this process stored as skipped, by reason (an organization_mismatch is an event naming another organization than its directory's)",
            self.events_skipped.clone(),
        );
        self
    }
}

impl Metrics {
    /// A sync run was queued for `trigger`; it counts as queued until [`Metrics::run_running`].
    pub fn run_started(&self, trigger: RunTrigger) {
        self.0
            .runs_started
            .get_or_create(&[("trigger", trigger.as_str())])
            .inc();
        self.0.runs_queued.inc();
    }

    /// A sync run was not started, for `reason` (one of [`RUN_SKIP_REASONS`]).
    pub fn run_skipped(&self, reason: &str) {
        let reason = known_or_other(&RUN_SKIP_REASONS, reason);
        self.0
            .runs_skipped
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// A queued sync run got its pull slot; it counts as running until [`Metrics::run_finished`].
    pub fn run_running(&self) {
        self.0.runs_queued.dec();
        self.0.runs_running.inc();
    }

    /// A sync run ended with `status` (`succeeded`, `failed` or `held`) `took` after it was queued;
    /// `ran`: it had got its slot (else it ended queued).
    pub fn run_finished(&self, status: RunStatus, took: Duration, ran: bool) {
        if status.has_ended() {
            let label = [("status", status.as_str())];
            self.0.runs_finished.get_or_create(&label).inc();
            self.0
                .run_duration
                .get_or_create(&label)
                .observe(took.as_secs_f64());
        }
        match ran {
            true => self.0.runs_running.dec(),
            false => self.0.runs_queued.dec(),
        };
    }

    /// A piece of work (one of [`WORK_KINDS`]) waited `took` for a database connection.
    pub fn connection_wait(&self, work: &str, took: Duration) {
        let work = known_or_other(&WORK_KINDS, work);
        self.0
            .connection_wait
            .get_or_create(&[("work", work)])
            .observe(took.as_secs_f64());
    }

    /// A write waited `took` for its workspace's lock.
    pub fn workspace_lock_wait(&self, took: Duration) {
        self.0.workspace_lock_wait.observe(took.as_secs_f64());
    }

    /// The applier put a lane aside because its workspace was locked.
    pub fn lane_deferred(&self) {
        self.0.lane_deferrals.inc();
    }

    /// The applier stored a delivery as skipped, for the reason with this code.
    pub fn event_skipped(&self, reason: &str) {
        let reason = known_or_other(&SKIP_REASONS, reason);
        self.0
            .events_skipped
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// One HTTP request to the broker, by path (`/directories`, `/directory_users`, …), answered (or
    /// failed) after `took`.
    pub fn broker_request(&self, path: &str, took: Duration) {
        let label = [("endpoint", broker_endpoint(path))];
        self.0.broker_requests.get_or_create(&label).inc();
        self.0
            .broker_request_duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// The broker answered 429.
    pub fn broker_rate_limited(&self) {
        self.0.broker_rate_limited.inc();
    }

    /// A broker request is sent again.
    pub fn broker_retry(&self) {
        self.0.broker_retries.inc();
    }

    /// A webhook delivery was answered `took` after its request came; `outcome` is one of
    /// [`WEBHOOK_OUTCOMES`].
    pub fn webhook_received(&self, outcome: &str, took: Duration) {
        if let Some(outcome) = WEBHOOK_OUTCOMES.iter().find(|o| **o == outcome) {
            let label = [("outcome", *outcome)];
            self.0.webhooks.get_or_create(&label).inc();
            self.0
                .webhook_duration
                .get_or_create(&label)
                .observe(took.as_secs_f64());
        }
    }

    /// This process applied a delivery received `waited` ago.
    pub fn delivery_applied(&self, waited: Duration) {
        self.0.apply_lag.observe(waited.as_secs_f64());
    }

    /// The tail read a page of `events` events.
    pub fn event_tail_page(&self, events: usize) {
        self.0.event_tail_pages.inc();
        self.0.event_tail_events.inc_by(events as u64);
    }

    /// The tail lost its cursor and starts over.
    pub fn event_tail_cursor_lost(&self) {
        self.0.event_tail_cursor_losses.inc();
    }

    /// Sync runs queued or running in this process.
    pub fn runs_in_progress(&self) -> i64 {
        (self.0.runs_queued.get() + self.0.runs_running.get()).max(0)
    }

    /// Every series in the text exposition format, with the backlog (none: the database did not answer,
    /// and its gauges are left out) and whether the applier runs.
    pub fn render(&self, backlog: Option<Backlog>, applier_running: bool) -> String {
        let mut scrape = Registry::default();
        if let Some(backlog) = backlog {
            scrape.register(
                "rollcall_deliveries_waiting",
                "Stored deliveries not applied yet, new or waiting for a retry (every instance sharing the database)",
                ConstGauge::new(backlog.waiting),
            );
            scrape.register(
                "rollcall_oldest_waiting_delivery_age_seconds",
                "How long the oldest delivery not applied yet has waited since it was received (0 when none waits)",
                ConstGauge::new(backlog.oldest_age.as_secs_f64()),
            );
            let lag = backlog.event_tail.unwrap_or_default();
            if let Some(age) = lag.newest_event_age {
                scrape.register(
                    "rollcall_event_tail_newest_event_age_seconds",
                    "How old the newest event the Events API tail stored is (every instance sharing the database)",
                    ConstGauge::new(age.as_secs_f64()),
                );
            }
            if let Some(age) = lag.last_poll_age {
                scrape.register(
                    "rollcall_event_tail_last_poll_age_seconds",
                    "Time since the Events API tail last caught up with the newest event (alert on it: a stalled tail is otherwise silent)",
                    ConstGauge::new(age.as_secs_f64()),
                );
                scrape.register(
                    "rollcall_event_tail_stalled",
                    "1 when the Events API tail has read no event since its start time although webhooks brought newer ones (the broker's clock far behind, or an API key of another environment); GET /api/v1/event-tail says why",
                    ConstGauge::new(i64::from(lag.stalled)),
                );
            }
        }
        scrape.register(
            "rollcall_applier_running",
            "1 while this process's applier runs; 0 once it has stopped (deliveries are then stored but not applied)",
            ConstGauge::new(i64::from(applier_running)),
        );
        let mut out = String::new();
        for registry in [&self.0.registry, &scrape] {
            prometheus_text::encode(&mut out, registry).expect("writing to a String cannot fail");
        }
        out
    }
}

/// The value of one series in a scrape, such as `rollcall_sync_runs_total{status="succeeded"}`.
pub fn sample_value(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_listed_from_the_start() {
        let text = Metrics::default().render(Some(Backlog::default()), true);
        let listed: Vec<&str> = text.lines().collect();
        let expected = "\
# HELP rollcall_sync_runs_total Sync runs finished, by how they ended.
# TYPE rollcall_sync_runs_total counter
rollcall_sync_runs_total{status=\"succeeded\"} 0
rollcall_sync_runs_total{status=\"failed\"} 0
rollcall_sync_runs_total{status=\"held\"} 0
# HELP rollcall_sync_runs_started_total Sync runs started, by what started them.
# TYPE rollcall_sync_runs_started_total counter
rollcall_sync_runs_started_total{trigger=\"scheduled\"} 0
rollcall_sync_runs_started_total{trigger=\"directory_activated\"} 0
rollcall_sync_runs_started_total{trigger=\"sync_enabled\"} 0
rollcall_sync_runs_started_total{trigger=\"on_demand\"} 0
# HELP rollcall_sync_runs_skipped_total Automatic sync runs not started: their directory's run was in progress, or its last automatic pull was less than ROLLCALL_AUTOMATIC_PULL_SPACING ago.
# TYPE rollcall_sync_runs_skipped_total counter
rollcall_sync_runs_skipped_total{reason=\"in_progress\"} 0
rollcall_sync_runs_skipped_total{reason=\"too_soon\"} 0
# HELP rollcall_sync_runs_queued Sync runs of this process waiting for a pull slot (ROLLCALL_MAX_CONCURRENT_PULLS).
# TYPE rollcall_sync_runs_queued gauge
rollcall_sync_runs_queued 0
# HELP rollcall_sync_runs_running Sync runs running in this process.
# TYPE rollcall_sync_runs_running gauge
rollcall_sync_runs_running 0
# HELP rollcall_workspace_lock_wait_seconds Time a write waited for its workspace's lock (held by another write of the same workspace).
# TYPE rollcall_workspace_lock_wait_seconds histogram
rollcall_workspace_lock_wait_seconds_count 0
# HELP rollcall_apply_lane_deferrals_total Times the applier found a lane's workspace locked by another writer and went on with other lanes.
# TYPE rollcall_apply_lane_deferrals_total counter
rollcall_apply_lane_deferrals_total 0
# HELP rollcall_broker_requests_total HTTP requests sent to the broker's pull and Events APIs, retries included, by endpoint.
# TYPE rollcall_broker_requests_total counter
rollcall_broker_requests_total{endpoint=\"directories\"} 0
rollcall_broker_requests_total{endpoint=\"directory_users\"} 0
rollcall_broker_requests_total{endpoint=\"directory_groups\"} 0
rollcall_broker_requests_total{endpoint=\"events\"} 0
# HELP rollcall_broker_rate_limited_total 429 Too Many Requests answers received from the broker.
# TYPE rollcall_broker_rate_limited_total counter
rollcall_broker_rate_limited_total 0
# HELP rollcall_broker_retries_total Broker requests sent again after a 429, a 5xx or a transport error.
# TYPE rollcall_broker_retries_total counter
rollcall_broker_retries_total 0
# HELP rollcall_webhooks_received_total Webhook deliveries answered, by outcome.
# TYPE rollcall_webhooks_received_total counter
rollcall_webhooks_received_total{outcome=\"accepted\"} 0
rollcall_webhooks_received_total{outcome=\"unauthorized\"} 0
rollcall_webhooks_received_total{outcome=\"bad_request\"} 0
rollcall_webhooks_received_total{outcome=\"timeout\"} 0
rollcall_webhooks_received_total{outcome=\"too_large\"} 0
rollcall_webhooks_received_total{outcome=\"unavailable\"} 0
# HELP rollcall_apply_lag_seconds Time from receiving a delivery (just before its acknowledgement) to applying it, for the deliveries this process applied.
# TYPE rollcall_apply_lag_seconds histogram
rollcall_apply_lag_seconds_bucket{le=\"0.005\"} 0
rollcall_apply_lag_seconds_bucket{le=\"0.01\"} 0
rollcall_apply_lag_seconds_bucket{le=\"0.025\"} 0
rollcall_apply_lag_seconds_bucket{le=\"0.05\"} 0
rollcall_apply_lag_seconds_bucket{le=\"0.1\"} 0
rollcall_apply_lag_seconds_bucket{le=\"0.25\"} 0
rollcall_apply_lag_seconds_bucket{le=\"0.5\"} 0
rollcall_apply_lag_seconds_bucket{le=\"1\"} 0
rollcall_apply_lag_seconds_bucket{le=\"2.5\"} 0
rollcall_apply_lag_seconds_bucket{le=\"5\"} 0
rollcall_apply_lag_seconds_bucket{le=\"10\"} 0
rollcall_apply_lag_seconds_bucket{le=\"30\"} 0
rollcall_apply_lag_seconds_bucket{le=\"+Inf\"} 0
rollcall_apply_lag_seconds_sum 0.0
rollcall_apply_lag_seconds_count 0
# HELP rollcall_event_tail_pages_total Pages of the broker's Events API this process's tail read.
# TYPE rollcall_event_tail_pages_total counter
rollcall_event_tail_pages_total 0
# HELP rollcall_event_tail_events_total Events this process's tail read from the broker's Events API (each stored once, whichever path brought it first).
# TYPE rollcall_event_tail_events_total counter
rollcall_event_tail_events_total 0
# HELP rollcall_event_tail_cursor_losses_total Times the tail found its cursor outside the broker's retention and started over from a full pull.
# TYPE rollcall_event_tail_cursor_losses_total counter
rollcall_event_tail_cursor_losses_total 0
# HELP rollcall_deliveries_waiting Stored deliveries not applied yet, new or waiting for a retry (every instance sharing the database).
# TYPE rollcall_deliveries_waiting gauge
rollcall_deliveries_waiting 0
# HELP rollcall_oldest_waiting_delivery_age_seconds How long the oldest delivery not applied yet has waited since it was received (0 when none waits).
# TYPE rollcall_oldest_waiting_delivery_age_seconds gauge
rollcall_oldest_waiting_delivery_age_seconds 0.0
# HELP rollcall_applier_running 1 while this process's applier runs; 0 once it has stopped (deliveries are then stored but not applied).
# TYPE rollcall_applier_running gauge
rollcall_applier_running 1
rollcall_events_skipped_total{reason=\"organization_mismatch\"} 0
rollcall_events_skipped_total{reason=\"plan_below_growth\"} 0
";
        // The series of a labelled family come in no set order.
        for line in expected.lines() {
            assert!(listed.contains(&line), "{line} missing from\n{text}");
        }
        for (histogram, label) in [
            ("rollcall_sync_run_duration_seconds", "status=\"held\""),
            (
                "rollcall_broker_request_duration_seconds",
                "endpoint=\"directories\"",
            ),
            ("rollcall_webhook_duration_seconds", "outcome=\"too_large\""),
            ("rollcall_db_connection_wait_seconds", "work=\"intake\""),
            ("rollcall_db_connection_wait_seconds", "work=\"apply\""),
        ] {
            let series = format!("{histogram}_count{{{label}}}");
            assert_eq!(sample_value(&text, &series), Some(0.0), "{series}");
        }
        let families = listed.iter().filter(|line| line.starts_with("# HELP"));
        assert_eq!(families.count(), 23);
    }

    #[test]
    fn the_tail_lag_is_listed_once_a_tail_has_read() {
        let lag = EventTailLag {
            newest_event_age: Some(Duration::from_secs(42)),
            last_poll_age: Some(Duration::from_millis(1500)),
            stalled: false,
        };
        let metrics = Metrics::default();
        metrics.event_tail_page(100);
        metrics.event_tail_page(0);
        metrics.event_tail_cursor_lost();
        let backlog = Backlog {
            event_tail: Some(lag),
            ..Backlog::default()
        };
        let text = metrics.render(Some(backlog), true);
        let value = |series: &str| sample_value(&text, series);
        assert_eq!(
            value("rollcall_event_tail_newest_event_age_seconds"),
            Some(42.0)
        );
        assert_eq!(
            value("rollcall_event_tail_last_poll_age_seconds"),
            Some(1.5)
        );
        assert_eq!(value("rollcall_event_tail_stalled"), Some(0.0));
        assert_eq!(value("rollcall_event_tail_pages_total"), Some(2.0));
        assert_eq!(value("rollcall_event_tail_events_total"), Some(100.0));
        assert_eq!(value("rollcall_event_tail_cursor_losses_total"), Some(1.0));
        let without = Metrics::default().render(Some(Backlog::default()), true);
        assert!(!without.contains("rollcall_event_tail_last_poll_age_seconds"));
    }

    #[test]
    fn counters_move_and_the_gauge_follows_runs() {
        let metrics = Metrics::default();
        let clone = metrics.clone();
        metrics.run_started(RunTrigger::Scheduled);
        clone.run_started(RunTrigger::OnDemand);
        metrics.run_running();
        metrics.run_finished(RunStatus::Held, Duration::from_secs(90), true);
        metrics.connection_wait("intake", Duration::from_millis(2));
        metrics.workspace_lock_wait(Duration::from_millis(30));
        metrics.lane_deferred();
        metrics.broker_request("/directory_users", Duration::from_millis(20));
        metrics.broker_request("/directory_users", Duration::from_millis(300));
        metrics.broker_request("/directories", Duration::from_millis(5));
        metrics.broker_rate_limited();
        metrics.broker_retry();
        metrics.webhook_received("too_large", Duration::from_millis(2));
        let text = metrics.render(None, false);
        let value = |series: &str| sample_value(&text, series);
        assert_eq!(
            value("rollcall_sync_runs_started_total{trigger=\"scheduled\"}"),
            Some(1.0)
        );
        assert_eq!(
            value("rollcall_sync_runs_started_total{trigger=\"on_demand\"}"),
            Some(1.0)
        );
        assert_eq!(
            value("rollcall_sync_runs_total{status=\"held\"}"),
            Some(1.0)
        );
        assert_eq!(value("rollcall_sync_runs_queued"), Some(1.0));
        assert_eq!(value("rollcall_sync_runs_running"), Some(0.0));
        assert_eq!(
            value("rollcall_db_connection_wait_seconds_bucket{work=\"intake\",le=\"0.0025\"}"),
            Some(1.0)
        );
        assert_eq!(
            value("rollcall_workspace_lock_wait_seconds_bucket{le=\"0.05\"}"),
            Some(1.0)
        );
        assert_eq!(value("rollcall_apply_lane_deferrals_total"), Some(1.0));
        assert_eq!(
            value("rollcall_broker_requests_total{endpoint=\"directory_users\"}"),
            Some(2.0)
        );
        assert_eq!(
            value("rollcall_broker_requests_total{endpoint=\"directories\"}"),
            Some(1.0)
        );
        assert_eq!(value("rollcall_broker_rate_limited_total"), Some(1.0));
        assert_eq!(value("rollcall_broker_retries_total"), Some(1.0));
        assert_eq!(
            value("rollcall_webhooks_received_total{outcome=\"too_large\"}"),
            Some(1.0)
        );
        assert_eq!(
            value("rollcall_sync_run_duration_seconds_bucket{status=\"held\",le=\"60\"}"),
            Some(0.0)
        );
        assert_eq!(
            value("rollcall_sync_run_duration_seconds_bucket{status=\"held\",le=\"300\"}"),
            Some(1.0)
        );
        assert_eq!(
            value("rollcall_sync_run_duration_seconds_sum{status=\"held\"}"),
            Some(90.0)
        );
        assert_eq!(
            value("rollcall_broker_request_duration_seconds_bucket{endpoint=\"directory_users\",le=\"0.025\"}"),
            Some(1.0)
        );
        assert_eq!(
            value("rollcall_broker_request_duration_seconds_count{endpoint=\"directory_users\"}"),
            Some(2.0)
        );
        assert_eq!(
            value("rollcall_webhook_duration_seconds_bucket{outcome=\"too_large\",le=\"0.0025\"}"),
            Some(1.0)
        );
    }

    #[test]
    fn the_apply_lag_histogram_is_cumulative() {
        let metrics = Metrics::default();
        for millis in [3, 3, 40, 700, 45_000] {
            metrics.delivery_applied(Duration::from_millis(millis));
        }
        let text = metrics.render(None, true);
        let value = |series: &str| sample_value(&text, series);
        assert_eq!(
            value("rollcall_apply_lag_seconds_bucket{le=\"0.005\"}"),
            Some(2.0)
        );
        assert_eq!(
            value("rollcall_apply_lag_seconds_bucket{le=\"0.05\"}"),
            Some(3.0)
        );
        assert_eq!(
            value("rollcall_apply_lag_seconds_bucket{le=\"1\"}"),
            Some(4.0)
        );
        assert_eq!(
            value("rollcall_apply_lag_seconds_bucket{le=\"30\"}"),
            Some(4.0)
        );
        assert_eq!(
            value("rollcall_apply_lag_seconds_bucket{le=\"+Inf\"}"),
            Some(5.0)
        );
        assert_eq!(value("rollcall_apply_lag_seconds_count"), Some(5.0));
        let sum = value("rollcall_apply_lag_seconds_sum").unwrap();
        assert!((sum - 45.746).abs() < 1e-9, "{sum}");
        assert_eq!(
            value("rollcall_deliveries_waiting"),
            None,
            "no backlog without the database"
        );
        assert_eq!(value("rollcall_applier_running"), Some(1.0));
    }

    #[test]
    fn unknown_names_are_counted_apart() {
        let metrics = Metrics::default();
        metrics.broker_request("/organizations", Duration::ZERO);
        let text = metrics.render(None, false);
        assert!(text.contains("rollcall_broker_requests_total{endpoint=\"other\"} 1\n"));
    }

    #[test]
    fn every_line_is_a_comment_or_a_sample() {
        let text = Metrics::default().render(Some(Backlog::default()), true);
        for line in text.lines() {
            if line.starts_with('#') {
                let parts: Vec<&str> = line.splitn(4, ' ').collect();
                assert!(matches!(parts[1], "HELP" | "TYPE"), "{line}");
                assert!(parts[2].starts_with("rollcall_"), "{line}");
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("series and value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
                "{line}"
            );
        }
        assert!(text.ends_with('\n'));
    }
}
