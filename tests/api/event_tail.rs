//! The Events API tail against the dev broker over HTTP: it repairs lost webhooks without a full pull,
//! stores and applies an event that came by both paths once, starts over from one full pull when its
//! cursor falls out of the broker's retention, resumes from its stored cursor after a restart, and runs
//! on one instance at a time.

use crate::helpers::{
    spawn_app_on, spawn_app_serving, test_settings, Backend, TestApp, TestDatabase, SECRET,
};
use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use rollcall::config::{EventSource, Settings};
use rollcall::db::schema::webhook_events;
use rollcall::db::{Database, DatabaseTarget, DbError, InstanceLock};
use rollcall::dev_broker::{
    DevBroker, DevBrokerConfig, DevBrokerHandle, DirectorySource, Faults, FaultsUpdate,
    GenerateOptions, WebhookTarget,
};
use rollcall::secret::ExposeSecret;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::time::{Duration, Instant};

crate::on_both_backends!(
    backend: lost_webhooks_are_repaired_by_the_tail_without_a_full_pull,
    an_event_by_both_paths_is_stored_and_applied_once,
    a_cursor_past_retention_leads_to_one_full_pull_and_a_tail_that_resumes,
    a_restart_resumes_from_the_stored_cursor,
    broker_errors_delay_the_tail_but_lose_and_repeat_nothing,
    with_the_source_events_a_webhook_only_wakes_the_tail,
    only_operators_read_the_event_tail,
    the_command_line_catches_up_once_unless_a_service_runs_the_tail,
);

mod instances {
    use super::two_instances_on_one_postgresql_share_one_tail;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_share_one_tail() {
        two_instances_on_one_postgresql_share_one_tail().await
    }
}

/// How often the tail polls in these tests when nothing wakes it.
const POLL: Duration = Duration::from_millis(200);

/// The service's address, bound and held by the test for every service it starts there, and a dev broker
/// of a small generated directory whose webhooks go to it with `faults`.
async fn broker_for(faults: Faults) -> (TcpListener, DevBrokerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().unwrap().port();
    let broker = DevBroker::start(DevBrokerConfig {
        source: DirectorySource::Generate(GenerateOptions {
            users: 20,
            groups: 3,
            memberships_per_user: 1.5,
            inactive_share: 0.1,
        }),
        faults,
        webhook: Some(WebhookTarget {
            url: format!("http://127.0.0.1:{port}/webhooks/workos"),
            secret: SECRET.into(),
        }),
        ..DevBrokerConfig::default()
    })
    .await
    .expect("the dev broker starts");
    (listener, broker)
}

/// Every webhook dropped.
fn webhooks_lost() -> Faults {
    Faults {
        drop: 1.0,
        ..Faults::default()
    }
}

/// The settings of a service with the tail on, pointed at `broker`.
fn tail_settings(settings: &mut Settings, broker: &DevBrokerHandle) {
    settings.workos_api_key = Some(broker.api_key.clone().into());
    settings.workos_api_base = broker.base_url.clone();
    settings.user_listing_rate = 0.0;
    settings.events_poll_interval = POLL;
    settings.pull_on_activation = true;
    settings.resync_interval = Some(Duration::ZERO);
}

/// A service with the tail on, on `target` and `listener`'s address, once its tail has started (with no
/// directory to pull yet, it starts reading from now).
async fn tail_app(
    target: &DatabaseTarget,
    listener: &TcpListener,
    broker: &DevBrokerHandle,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    wait_for_the_file(target).await;
    let serving = listener.try_clone().expect("the listener's address");
    let app = spawn_app_serving(target.clone(), serving, |s| {
        tail_settings(s, broker);
        adjust(s);
    })
    .await;
    wait_until("the tail starts", || async {
        let tail = tail_status(&app).await;
        tail["state"] == "idle" && (tail["cursor"].is_string() || tail["resume_from"].is_string())
    })
    .await;
    app
}

/// On SQLite, waits until a stopped service has let go of the file.
async fn wait_for_the_file(target: &DatabaseTarget) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while InstanceLock::acquire(target).is_err() {
        assert!(
            Instant::now() < deadline,
            "the stopped service kept the file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, check: impl Fn() -> F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn tail_status(app: &TestApp) -> Value {
    let (status, body) = app.op(Method::GET, "/api/v1/event-tail", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The directory's runs, oldest first, as `(trigger, status)`.
async fn runs(app: &TestApp, broker: &DevBrokerHandle) -> Vec<(String, String)> {
    let path = format!(
        "/api/v1/sync-runs?directory={}&limit=1000",
        broker.directory_id
    );
    let (status, body) = app.op(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut runs: Vec<(String, String)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |key: &str| r[key].as_str().unwrap().to_string();
            (text("trigger"), text("status"))
        })
        .collect();
    runs.reverse();
    runs
}

/// Turns directory sync on for the broker's organization and waits for the pull that brings it in.
async fn synced(app: &TestApp, broker: &DevBrokerHandle) -> String {
    let ws = app.synced_workspace("org_dev").await;
    wait_until("the first pull ends", || async {
        runs(app, broker)
            .await
            .iter()
            .any(|(_, status)| status == "succeeded")
    })
    .await;
    ws
}

/// The workspace's active members and the broker's active users, each as `email → (first, last)`.
type People = BTreeMap<String, (Value, Value)>;

async fn members_and_truth(app: &TestApp, ws: &str, broker: &DevBrokerHandle) -> (People, People) {
    let members = app
        .members(ws)
        .await
        .into_iter()
        .filter(|m| m["status"] == "active")
        .map(|m| {
            let email = m["email"].as_str().unwrap().to_lowercase();
            (email, (m["first_name"].clone(), m["last_name"].clone()))
        })
        .collect();
    let truth = broker
        .truth()
        .users
        .into_iter()
        .filter(|u| u.state == "active")
        .filter_map(|u| {
            let names = (json!(u.first_name), json!(u.last_name));
            Some((u.email?.to_lowercase(), names))
        })
        .collect();
    (members, truth)
}

async fn converges(app: &TestApp, ws: &str, broker: &DevBrokerHandle) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (members, truth) = members_and_truth(app, ws, broker).await;
        if members == truth && waiting(&app.db) == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence within 60 s:\nmembers {members:?}\ntruth {truth:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn waiting(db: &Database) -> i64 {
    crate::helpers::waiting_events(db)
}

/// Each stored delivery of the broker's events: event id → (rows, redeliveries, source of the first).
fn stored_events(db: &Database) -> BTreeMap<String, (usize, i32, String)> {
    let rows: Vec<(Option<String>, i32, String)> = db
        .read(|conn| {
            webhook_events::table
                .select((
                    webhook_events::event_id,
                    webhook_events::redeliveries,
                    webhook_events::source,
                ))
                .order(webhook_events::id)
                .load(conn)
                .map_err(DbError::from)
        })
        .expect("read the deliveries");
    let mut stored = BTreeMap::new();
    for (id, redeliveries, source) in rows {
        let entry = stored
            .entry(id.expect("an event"))
            .or_insert((0, 0, source));
        entry.0 += 1;
        entry.1 += redeliveries;
    }
    stored
}

/// The ids of every event the broker generated.
fn broker_event_ids(broker: &DevBrokerHandle) -> BTreeSet<String> {
    broker.events().into_iter().map(|r| r.event.id).collect()
}

/// Every event the broker generated is stored in exactly one row and was never brought again; returns
/// what is stored.
fn each_event_stored_once(
    db: &Database,
    broker: &DevBrokerHandle,
) -> BTreeMap<String, (usize, i32, String)> {
    let stored = stored_events(db);
    assert_eq!(
        stored.keys().cloned().collect::<BTreeSet<_>>(),
        broker_event_ids(broker)
    );
    assert!(
        stored
            .values()
            .all(|(rows, again, _)| *rows == 1 && *again == 0),
        "{stored:?}"
    );
    stored
}

async fn lost_webhooks_are_repaired_by_the_tail_without_a_full_pull(backend: Backend) {
    let database = TestDatabase::new(backend);
    let (listener, broker) = broker_for(webhooks_lost()).await;
    let app = tail_app(&database.target, &listener, &broker, |_| {}).await;
    let ws = synced(&app, &broker).await;
    let runs_before = runs(&app, &broker).await;
    assert_eq!(runs_before.len(), 1, "{runs_before:?}");
    assert!(broker.random_changes(30) > 0);
    assert_eq!(
        broker.event_summary().delivered,
        0,
        "every webhook is dropped"
    );
    converges(&app, &ws, &broker).await;
    assert_eq!(
        runs(&app, &broker).await,
        runs_before,
        "no further full pull"
    );
    let stored = each_event_stored_once(&app.db, &broker);
    assert!(stored.values().all(|(_, _, source)| source == "events"));
    let generated = broker_event_ids(&broker);
    let tail = tail_status(&app).await;
    assert_eq!(tail["events_applied"], generated.len());
    let last = broker.events().last().unwrap().event.id.clone();
    assert_eq!(tail["cursor"], last);
    assert!(tail["lag_seconds"].as_f64().is_some());
    assert!(tail["last_poll_at"].is_string());
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| rollcall::metrics::sample_value(&metrics, series);
    assert_eq!(
        value("rollcall_event_tail_events_total"),
        Some(generated.len() as f64)
    );
    assert!(value("rollcall_event_tail_pages_total").unwrap() >= 2.0);
    assert!(value("rollcall_event_tail_last_poll_age_seconds").unwrap() < 30.0);
    assert!(value("rollcall_event_tail_newest_event_age_seconds").is_some());
    assert_eq!(value("rollcall_event_tail_cursor_losses_total"), Some(0.0));
}

async fn an_event_by_both_paths_is_stored_and_applied_once(backend: Backend) {
    let database = TestDatabase::new(backend);
    let (listener, broker) = broker_for(Faults::default()).await;
    let app = tail_app(&database.target, &listener, &broker, |_| {}).await;
    let ws = synced(&app, &broker).await;
    let audited_before = crate::helpers::audit_entries(&app.db);
    broker.random_changes(30);
    assert!(broker.settle(Duration::from_secs(30)).await);
    converges(&app, &ws, &broker).await;
    let generated = broker_event_ids(&broker);
    // Both paths brought every event: the second to arrive is counted on the first's row.
    wait_until("the tail reads every event", || async {
        let stored = stored_events(&app.db);
        stored.len() == generated.len() && stored.values().all(|(_, again, _)| *again == 1)
    })
    .await;
    let stored = stored_events(&app.db);
    assert!(stored.values().all(|(rows, _, _)| *rows == 1), "{stored:?}");
    assert_eq!(stored.keys().cloned().collect::<BTreeSet<_>>(), generated);
    let audited = crate::helpers::audit_entries(&app.db) - audited_before;
    // Each change applied once: a second application would change nothing, but would be stored again.
    assert!(audited > 0);
    let (status, body) = app
        .op(Method::GET, "/api/v1/events?status=received", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!([]), "nothing waits to be applied twice");
    converges(&app, &ws, &broker).await;
}

async fn a_cursor_past_retention_leads_to_one_full_pull_and_a_tail_that_resumes(backend: Backend) {
    let database = TestDatabase::new(backend);
    let (listener, broker) = broker_for(webhooks_lost()).await;
    let app = tail_app(&database.target, &listener, &broker, |_| {}).await;
    let ws = synced(&app, &broker).await;
    broker.random_changes(10);
    converges(&app, &ws, &broker).await;
    assert!(tail_status(&app).await["cursor"].is_string());
    // The broker forgets every event, the one at the cursor too; more changes follow, lost as webhooks.
    let expired = reqwest::Client::new()
        .post(format!("{}/_dev/events/expire", broker.base_url))
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert!(
        expired.status().is_success(),
        "{}",
        expired.text().await.unwrap()
    );
    broker.random_changes(10);
    wait_until("the tail starts over", || async {
        runs(&app, &broker)
            .await
            .iter()
            .any(|(trigger, status)| trigger == "event_cursor_lost" && status == "succeeded")
    })
    .await;
    converges(&app, &ws, &broker).await;
    // Later changes come through the tail again, from the pull's start.
    broker.random_changes(10);
    converges(&app, &ws, &broker).await;
    let lost: Vec<_> = runs(&app, &broker)
        .await
        .into_iter()
        .filter(|(trigger, _)| trigger == "event_cursor_lost")
        .collect();
    assert_eq!(lost.len(), 1, "exactly one full pull: {lost:?}");
    let last = broker.events().last().unwrap().event.id.clone();
    wait_until("the tail reads the latest event", || async {
        tail_status(&app).await["cursor"] == last
    })
    .await;
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        rollcall::metrics::sample_value(&metrics, "rollcall_event_tail_cursor_losses_total"),
        Some(1.0)
    );
}

async fn a_restart_resumes_from_the_stored_cursor(backend: Backend) {
    let database = TestDatabase::new(backend);
    let (listener, broker) = broker_for(webhooks_lost()).await;
    let first = tail_app(&database.target, &listener, &broker, |_| {}).await;
    let ws = synced(&first, &broker).await;
    broker.random_changes(15);
    converges(&first, &ws, &broker).await;
    let cursor = tail_status(&first).await["cursor"].clone();
    assert!(cursor.is_string());
    let runs_before = runs(&first, &broker).await;
    drop(first);
    // While no service runs, the directory changes on.
    broker.random_changes(15);
    let second = tail_app(&database.target, &listener, &broker, |_| {}).await;
    converges(&second, &ws, &broker).await;
    assert_eq!(runs(&second, &broker).await, runs_before, "no full pull");
    // Read again from an earlier place, an event would count as a redelivery.
    each_event_stored_once(&second.db, &broker);
    assert_ne!(tail_status(&second).await["cursor"], cursor);
}

async fn broker_errors_delay_the_tail_but_lose_and_repeat_nothing(backend: Backend) {
    let database = TestDatabase::new(backend);
    let (listener, broker) = broker_for(webhooks_lost()).await;
    let app = tail_app(&database.target, &listener, &broker, |_| {}).await;
    let ws = synced(&app, &broker).await;
    // Half the requests fail from now on: the client retries, and past its retries the tail backs off
    // with its cursor kept.
    broker
        .set_faults(&FaultsUpdate {
            rate_500: Some(0.5),
            ..FaultsUpdate::default()
        })
        .unwrap();
    for _ in 0..5 {
        broker.random_changes(8);
        tokio::time::sleep(POLL).await;
    }
    converges(&app, &ws, &broker).await;
    each_event_stored_once(&app.db, &broker);
    let metrics = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        rollcall::metrics::sample_value(&metrics, "rollcall_broker_retries_total").unwrap() > 0.0
    );
    assert_eq!(runs(&app, &broker).await.len(), 1, "no further full pull");
}

async fn with_the_source_events_a_webhook_only_wakes_the_tail(backend: Backend) {
    let database = TestDatabase::new(backend);
    let (listener, broker) = broker_for(Faults::default()).await;
    // Polled only every 10 minutes: only the webhooks' nudges can bring the events in time.
    let app = tail_app(&database.target, &listener, &broker, |s| {
        s.event_source = Some(EventSource::Events);
        s.events_poll_interval = Duration::from_secs(600);
    })
    .await;
    let ws = synced(&app, &broker).await;
    broker.random_changes(10);
    assert!(broker.settle(Duration::from_secs(30)).await);
    assert!(broker.event_summary().delivered > 0);
    converges(&app, &ws, &broker).await;
    let stored = stored_events(&app.db);
    assert!(
        stored
            .values()
            .all(|(rows, again, source)| *rows == 1 && *again == 0 && source == "events"),
        "webhook bodies are not stored: {stored:?}"
    );
}

async fn only_operators_read_the_event_tail(backend: Backend) {
    let database = TestDatabase::new(backend);
    let app = spawn_app_on(database.target.clone(), |_| {}).await;
    let (status, body) = app
        .call(Method::GET, "/api/v1/event-tail", None, None)
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );
    let ws = app.create_workspace("org_admin", "growth").await;
    let admin = app.admin_token(&ws).await;
    let (status, body) = app
        .call(Method::GET, "/api/v1/event-tail", Some(&admin), None)
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    let (status, _) = app.op(Method::POST, "/api/v1/event-tail", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // Without an API key no tail runs, and it says so.
    let tail = tail_status(&app).await;
    assert_eq!(
        tail,
        json!({"state": "off", "cursor": null, "resume_from": null, "last_poll_at": null,
               "lag_seconds": null, "events_applied": 0})
    );
    assert!(!test_settings(database.target.clone()).event_tail_enabled());
}

/// Two instances on one PostgreSQL database, both with the tail on: one reads, the other stands by, and
/// each event is stored and applied once.
async fn two_instances_on_one_postgresql_share_one_tail() {
    let database = TestDatabase::new(Backend::Postgres);
    let (listener, broker) = broker_for(webhooks_lost()).await;
    let first = tail_app(&database.target, &listener, &broker, |_| {}).await;
    let second = spawn_app_on(database.target.clone(), |s| {
        tail_settings(s, &broker);
    })
    .await;
    wait_until("the second instance stands by", || async {
        tail_status(&second).await["state"] == "standby"
    })
    .await;
    let ws = synced(&second, &broker).await;
    broker.random_changes(30);
    converges(&second, &ws, &broker).await;
    each_event_stored_once(&second.db, &broker);
    let pages = |app: &TestApp| {
        let url = format!("{}/metrics", app.address);
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            rollcall::metrics::sample_value(&text, "rollcall_event_tail_pages_total").unwrap()
        }
    };
    assert!(pages(&first).await > 0.0);
    assert_eq!(pages(&second).await, 0.0, "the standby instance never read");
    assert_eq!(tail_status(&second).await["state"], "standby");
    // The reading instance stops: the other takes the tail over from the shared cursor.
    drop(first);
    wait_until("the second instance takes over", || async {
        tail_status(&second).await["state"] != "standby"
    })
    .await;
    broker.random_changes(10);
    converges(&second, &ws, &broker).await;
    each_event_stored_once(&second.db, &broker);
}

/// `rollcall tail --once` on `target`'s database with the broker's key.
fn tail_once(target: &DatabaseTarget, broker: &DevBrokerHandle) -> std::process::Command {
    let url = match target {
        DatabaseTarget::Sqlite(path) => format!("sqlite://{path}"),
        DatabaseTarget::Postgres(url) => url.expose_secret().to_owned(),
    };
    let mut command = crate::cli::rollcall();
    command
        .args(["tail", "--once"])
        .env("DATABASE_URL", url)
        .env("WORKOS_API_KEY", &broker.api_key)
        .env("WORKOS_API_BASE", &broker.base_url);
    command
}

async fn output_of(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

async fn the_command_line_catches_up_once_unless_a_service_runs_the_tail(backend: Backend) {
    let database = TestDatabase::new(backend);
    let (listener, broker) = broker_for(webhooks_lost()).await;
    let app = tail_app(&database.target, &listener, &broker, |_| {}).await;
    let ws = synced(&app, &broker).await;
    let refused = output_of(tail_once(&database.target, &broker)).await;
    let said = crate::cli::text(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("another Rollcall instance runs the Events API tail"),
        "{said}"
    );
    drop(app);
    wait_for_the_file(&database.target).await;
    // While no service runs, the directory changes; the command line brings the changes in.
    broker.random_changes(20);
    let caught_up = output_of(tail_once(&database.target, &broker)).await;
    let (out, err) = (
        crate::cli::text(&caught_up.stdout),
        crate::cli::text(&caught_up.stderr),
    );
    assert!(caught_up.status.success(), "{out}\n{err}");
    let generated = broker_event_ids(&broker);
    let expected = format!("caught up: {} events read", generated.len());
    assert!(out.contains(&expected), "{out}");
    let db = database.open();
    assert_eq!(waiting(&db), 0, "what it stored is applied before it exits");
    let stored = stored_events(&db);
    assert_eq!(stored.keys().cloned().collect::<BTreeSet<_>>(), generated);
    drop(db);
    let app = tail_app(&database.target, &listener, &broker, |_| {}).await;
    converges(&app, &ws, &broker).await;
    assert_eq!(runs(&app, &broker).await.len(), 1, "no full pull");
    let help = crate::cli::rollcall()
        .args(["tail", "--help"])
        .output()
        .unwrap();
    let help = crate::cli::text(&help.stdout);
    assert!(
        help.contains("--once") && help.contains("Events API"),
        "{help}"
    );
}
