//! `GET /metrics`: counters, gauges and a histogram in the Prometheus text exposition format (version 0.0.4).
//!
//! A small fixed registry of atomics: every series is known up front, so a scrape lists each one (at 0
//! until it moves) and counting never allocates or locks. The applier's backlog is read from the database
//! at each scrape, so it covers every instance sharing it.

use actix_web::{web, HttpResponse};
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How a sync run ended.
pub const RUN_STATUSES: [&str; 3] = ["succeeded", "failed", "held"];
/// Why a sync run started.
pub const RUN_TRIGGERS: [&str; 4] = [
    "scheduled",
    "directory_activated",
    "sync_enabled",
    "on_demand",
];
/// The broker's list endpoints.
pub const BROKER_ENDPOINTS: [&str; 3] = ["directories", "directory_users", "directory_groups"];
/// What became of a webhook delivery.
pub const WEBHOOK_OUTCOMES: [&str; 5] = [
    "accepted",
    "unauthorized",
    "bad_request",
    "too_large",
    "unavailable",
];

/// Upper bounds of the apply-lag histogram's buckets, in seconds.
pub const APPLY_LAG_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Observations counted into fixed buckets.
#[derive(Default)]
struct Histogram {
    /// Observations at or below each bound of [`APPLY_LAG_BUCKETS`] (not cumulative).
    buckets: [AtomicU64; APPLY_LAG_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        if let Some(i) = APPLY_LAG_BUCKETS.iter().position(|bound| seconds <= *bound) {
            bump(&self.buckets[i]);
        }
        bump(&self.count);
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }
}

/// The applier's backlog as the database shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// Stored deliveries not applied yet, new or waiting for a retry.
    pub waiting: i64,
    /// How long the oldest of them has waited since it was received (0 when none waits).
    pub oldest_age: Duration,
}

#[derive(Default)]
struct Registry {
    runs_finished: [AtomicU64; RUN_STATUSES.len()],
    runs_started: [AtomicU64; RUN_TRIGGERS.len()],
    runs_started_other: AtomicU64,
    runs_running: AtomicI64,
    broker_requests: [AtomicU64; BROKER_ENDPOINTS.len()],
    broker_requests_other: AtomicU64,
    broker_rate_limited: AtomicU64,
    broker_retries: AtomicU64,
    webhooks: [AtomicU64; WEBHOOK_OUTCOMES.len()],
    apply_lag: Histogram,
}

/// The service's metrics; cheap to clone, clones count into the same registry.
#[derive(Clone, Default)]
pub struct Metrics(Arc<Registry>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn position(names: &[&str], name: &str) -> Option<usize> {
    names.iter().position(|n| *n == name)
}

impl Metrics {
    /// A sync run was queued for `trigger`; it counts as running until [`Metrics::run_finished`].
    pub fn run_started(&self, trigger: &str) {
        match position(&RUN_TRIGGERS, trigger) {
            Some(i) => bump(&self.0.runs_started[i]),
            None => bump(&self.0.runs_started_other),
        }
        self.0.runs_running.fetch_add(1, Ordering::Relaxed);
    }

    /// A sync run ended with `status` (`succeeded`, `failed` or `held`).
    pub fn run_finished(&self, status: &str) {
        if let Some(i) = position(&RUN_STATUSES, status) {
            bump(&self.0.runs_finished[i]);
        }
        self.0.runs_running.fetch_sub(1, Ordering::Relaxed);
    }

    /// One HTTP request to the broker, by path (`/directories`, `/directory_users`, …).
    pub fn broker_request(&self, path: &str) {
        let endpoint = path.trim_start_matches('/').split('/').next().unwrap_or("");
        match position(&BROKER_ENDPOINTS, endpoint) {
            Some(i) => bump(&self.0.broker_requests[i]),
            None => bump(&self.0.broker_requests_other),
        }
    }

    /// The broker answered 429.
    pub fn broker_rate_limited(&self) {
        bump(&self.0.broker_rate_limited);
    }

    /// A broker request is sent again.
    pub fn broker_retry(&self) {
        bump(&self.0.broker_retries);
    }

    /// A webhook delivery was answered; `outcome` is one of [`WEBHOOK_OUTCOMES`].
    pub fn webhook_received(&self, outcome: &str) {
        if let Some(i) = position(&WEBHOOK_OUTCOMES, outcome) {
            bump(&self.0.webhooks[i]);
        }
    }

    /// This process applied a delivery received `waited` ago.
    pub fn delivery_applied(&self, waited: Duration) {
        self.0.apply_lag.observe(waited);
    }

    /// Sync runs queued or running in this process.
    pub fn runs_running(&self) -> i64 {
        self.0.runs_running.load(Ordering::Relaxed)
    }

    /// Every series in the text exposition format, with the backlog (none: the database did not answer,
    /// and its gauges have no sample) and whether the applier runs.
    pub fn render(&self, backlog: Option<Backlog>, applier_running: bool) -> String {
        let r = &self.0;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = Exposition::default();
        out.family(
            "rollcall_sync_runs_total",
            "counter",
            "Sync runs finished, by how they ended.",
        );
        for (status, counter) in RUN_STATUSES.iter().zip(&r.runs_finished) {
            out.sample(
                "rollcall_sync_runs_total",
                &[("status", status)],
                load(counter),
            );
        }
        out.family(
            "rollcall_sync_runs_started_total",
            "counter",
            "Sync runs started, by what started them.",
        );
        for (trigger, counter) in RUN_TRIGGERS.iter().zip(&r.runs_started) {
            out.sample(
                "rollcall_sync_runs_started_total",
                &[("trigger", trigger)],
                load(counter),
            );
        }
        let other = load(&r.runs_started_other);
        if other > 0 {
            out.sample(
                "rollcall_sync_runs_started_total",
                &[("trigger", "other")],
                other,
            );
        }
        out.family(
            "rollcall_sync_runs_running",
            "gauge",
            "Sync runs queued or running in this process.",
        );
        out.sample_signed(
            "rollcall_sync_runs_running",
            r.runs_running.load(Ordering::Relaxed).max(0),
        );
        out.family(
            "rollcall_broker_requests_total",
            "counter",
            "HTTP requests sent to the broker's pull API, retries included, by endpoint.",
        );
        for (endpoint, counter) in BROKER_ENDPOINTS.iter().zip(&r.broker_requests) {
            out.sample(
                "rollcall_broker_requests_total",
                &[("endpoint", endpoint)],
                load(counter),
            );
        }
        let other = load(&r.broker_requests_other);
        if other > 0 {
            out.sample(
                "rollcall_broker_requests_total",
                &[("endpoint", "other")],
                other,
            );
        }
        out.family(
            "rollcall_broker_rate_limited_total",
            "counter",
            "429 Too Many Requests answers received from the broker.",
        );
        out.sample(
            "rollcall_broker_rate_limited_total",
            &[],
            load(&r.broker_rate_limited),
        );
        out.family(
            "rollcall_broker_retries_total",
            "counter",
            "Broker requests sent again after a 429, a 5xx or a transport error.",
        );
        out.sample(
            "rollcall_broker_retries_total",
            &[],
            load(&r.broker_retries),
        );
        out.family(
            "rollcall_webhooks_received_total",
            "counter",
            "Webhook deliveries answered, by outcome.",
        );
        for (outcome, counter) in WEBHOOK_OUTCOMES.iter().zip(&r.webhooks) {
            out.sample(
                "rollcall_webhooks_received_total",
                &[("outcome", outcome)],
                load(counter),
            );
        }
        out.family(
            "rollcall_apply_lag_seconds",
            "histogram",
            "Time from receiving a delivery (just before its acknowledgement) to applying it, for the deliveries this process applied.",
        );
        let lag = &r.apply_lag;
        let mut cumulative = 0;
        for (bound, counter) in APPLY_LAG_BUCKETS.iter().zip(&lag.buckets) {
            cumulative += load(counter);
            out.sample(
                "rollcall_apply_lag_seconds_bucket",
                &[("le", &bound.to_string())],
                cumulative,
            );
        }
        let count = load(&lag.count);
        out.sample(
            "rollcall_apply_lag_seconds_bucket",
            &[("le", "+Inf")],
            count,
        );
        out.sample_float(
            "rollcall_apply_lag_seconds_sum",
            load(&lag.sum_micros) as f64 / 1e6,
        );
        out.sample("rollcall_apply_lag_seconds_count", &[], count);
        out.family(
            "rollcall_deliveries_waiting",
            "gauge",
            "Stored deliveries not applied yet, new or waiting for a retry (every instance sharing the database).",
        );
        if let Some(backlog) = backlog {
            out.sample_signed("rollcall_deliveries_waiting", backlog.waiting);
        }
        out.family(
            "rollcall_oldest_waiting_delivery_age_seconds",
            "gauge",
            "How long the oldest delivery not applied yet has waited since it was received (0 when none waits).",
        );
        if let Some(backlog) = backlog {
            out.sample_float(
                "rollcall_oldest_waiting_delivery_age_seconds",
                backlog.oldest_age.as_secs_f64(),
            );
        }
        out.family(
            "rollcall_applier_running",
            "gauge",
            "1 while this process's applier runs; 0 once it has stopped (deliveries are then stored but not applied).",
        );
        out.sample_signed("rollcall_applier_running", i64::from(applier_running));
        out.0
    }
}

/// Text in the exposition format, written family by family.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        self.labels(labels);
        let _ = writeln!(self.0, " {value}");
    }

    fn sample_signed(&mut self, name: &str, value: i64) {
        let _ = writeln!(self.0, "{name} {value}");
    }

    fn sample_float(&mut self, name: &str, value: f64) {
        let _ = writeln!(self.0, "{name} {value}");
    }

    fn labels(&mut self, labels: &[(&str, &str)]) {
        if labels.is_empty() {
            return;
        }
        self.0.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "{key}=\"{}\"", escape_label(value));
        }
        self.0.push('}');
    }
}

/// A label value: backslash, double quote and line feed are escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A HELP text: backslash and line feed are escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::api::resource("/metrics").route(web::get().to(metrics)));
}

async fn metrics(state: web::Data<crate::api::AppState>) -> HttpResponse {
    let db = state.db.clone();
    let backlog = match web::block(move || db.read(crate::intake::applier::backlog)).await {
        Ok(Ok(backlog)) => Some(backlog),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "/metrics could not read the backlog from the database");
            None
        }
        Err(_) => None,
    };
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(state.metrics.render(backlog, state.applier.running()))
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
# HELP rollcall_sync_runs_running Sync runs queued or running in this process.
# TYPE rollcall_sync_runs_running gauge
rollcall_sync_runs_running 0
# HELP rollcall_broker_requests_total HTTP requests sent to the broker's pull API, retries included, by endpoint.
# TYPE rollcall_broker_requests_total counter
rollcall_broker_requests_total{endpoint=\"directories\"} 0
rollcall_broker_requests_total{endpoint=\"directory_users\"} 0
rollcall_broker_requests_total{endpoint=\"directory_groups\"} 0
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
rollcall_apply_lag_seconds_sum 0
rollcall_apply_lag_seconds_count 0
# HELP rollcall_deliveries_waiting Stored deliveries not applied yet, new or waiting for a retry (every instance sharing the database).
# TYPE rollcall_deliveries_waiting gauge
rollcall_deliveries_waiting 0
# HELP rollcall_oldest_waiting_delivery_age_seconds How long the oldest delivery not applied yet has waited since it was received (0 when none waits).
# TYPE rollcall_oldest_waiting_delivery_age_seconds gauge
rollcall_oldest_waiting_delivery_age_seconds 0
# HELP rollcall_applier_running 1 while this process's applier runs; 0 once it has stopped (deliveries are then stored but not applied).
# TYPE rollcall_applier_running gauge
rollcall_applier_running 1
";
        assert_eq!(text, expected);
    }

    #[test]
    fn counters_move_and_the_gauge_follows_runs() {
        let metrics = Metrics::default();
        let clone = metrics.clone();
        metrics.run_started("scheduled");
        clone.run_started("on_demand");
        metrics.run_finished("held");
        metrics.broker_request("/directory_users");
        metrics.broker_request("/directory_users");
        metrics.broker_request("/directories");
        metrics.broker_rate_limited();
        metrics.broker_retry();
        metrics.webhook_received("too_large");
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
        assert_eq!(value("rollcall_sync_runs_running"), Some(1.0));
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
        assert_eq!(value("rollcall_apply_lag_seconds_sum"), Some(45.746));
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
        metrics.run_started("manual \"test\"");
        metrics.broker_request("/organizations");
        let text = metrics.render(None, false);
        assert!(text.contains("rollcall_sync_runs_started_total{trigger=\"other\"} 1\n"));
        assert!(text.contains("rollcall_broker_requests_total{endpoint=\"other\"} 1\n"));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut out = Exposition::default();
        out.family("x_total", "counter", "a \\ b\nc");
        out.sample("x_total", &[("a", "q\"u\\o\nte"), ("b", "2")], 3);
        assert_eq!(
            out.0,
            "# HELP x_total a \\\\ b\\nc\n# TYPE x_total counter\nx_total{a=\"q\\\"u\\\\o\\nte\",b=\"2\"} 3\n"
        );
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
