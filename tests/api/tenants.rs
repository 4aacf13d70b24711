//! Rule 18: work is ordered per directory and per workspace, never across workspaces. A workspace whose
//! lock another writer holds (a long admin transaction, a pull's batch) holds up only its own events; reads
//! and previews take no lock; webhooks are acknowledged while the broker is down and every workspace's
//! pulls wait for it; a database that is down answers webhooks 503 at once.

use crate::broker::{at, event, TestDirectory};
use crate::helpers::{postgres_url, spawn_app_on, spawn_app_with, Backend, TestApp, TestDatabase};
use reqwest::{Method, StatusCode};
use rollcall::metrics::sample_value;
use rollcall::secret::ExposeSecret;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

crate::on_both_backends!(
    backend:
    a_held_workspace_holds_up_only_its_own_events,
    webhooks_are_acknowledged_while_the_broker_is_down_and_pulls_wait_for_it,
);

/// A workspace with directory sync on and its directory activated; returns the workspace's id.
async fn activated(app: &TestApp, dir: &TestDirectory) -> String {
    let ws = app.synced_workspace(&dir.organization_id).await;
    app.deliver(&[event("dsync.activated", dir.object(&at(0)), &at(0))])
        .await;
    ws
}

/// A `dsync.user.created` or `.updated` of one person, named `first`.
fn person(dir: &TestDirectory, kind: &str, first: &str, minute: u32) -> Value {
    let user = dir.user(
        &format!("directory_user_{}", dir.tag),
        &format!("idp-{}", dir.tag),
        Some(&format!("person-{}@example.com", dir.tag.to_lowercase())),
        first,
        "active",
        &at(minute),
    );
    event(kind, user, &at(minute))
}

async fn post(app: &TestApp, body: &Value) {
    let response = app.post_webhook(body.to_string().as_bytes()).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// Polls `check` every 20 ms for up to 30 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// While another writer holds workspace A's lock, B's events are applied, reads and a role-mapping
/// preview of A answer, and A's events wait; once it lets go, A's are applied in the order they came.
async fn a_held_workspace_holds_up_only_its_own_events(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let (dir_a, dir_b) = (TestDirectory::new(), TestDirectory::new());
    let ws_a = activated(&app, &dir_a).await;
    let ws_b = activated(&app, &dir_b).await;
    let held = {
        let (db, ws) = (app.db.clone(), ws_a.clone());
        tokio::task::spawn_blocking(move || db.hold_workspace(&ws))
            .await
            .unwrap()
            .expect("the lock is taken")
    };

    for (minute, name) in [(1, "Ada"), (2, "Adeline"), (3, "Adele")] {
        let kind = if minute == 1 {
            "dsync.user.created"
        } else {
            "dsync.user.updated"
        };
        post(&app, &person(&dir_a, kind, name, minute)).await;
    }
    post(&app, &person(&dir_b, "dsync.user.created", "Bea", 1)).await;
    let email_b = format!("person-{}@example.com", dir_b.tag.to_lowercase());
    eventually("B's member is visible", || async {
        app.member(&ws_b, &email_b).await.is_some()
    })
    .await;
    // An admin write of B goes through too.
    let (status, body) = app
        .op(
            Method::POST,
            &format!("/api/v1/workspaces/{ws_b}/teams"),
            Some(json!({"name": "Team B"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A reads, and previews, without waiting for the lock; its events wait.
    assert!(
        app.members(&ws_a).await.is_empty(),
        "A's events wait for its lock"
    );
    let (status, preview) = app
        .op(
            Method::POST,
            &format!("/api/v1/workspaces/{ws_a}/role-mappings/preview"),
            Some(json!([])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["total"], 0);
    let deferred = app.scrape().await;
    assert!(
        sample_value(&deferred, "rollcall_apply_lane_deferrals_total").unwrap_or(0.0) >= 1.0,
        "the applier put A's lane aside: {deferred}"
    );

    drop(held);
    app.wait_applied().await;
    let email_a = format!("person-{}@example.com", dir_a.tag.to_lowercase());
    let member = app
        .member(&ws_a, &email_a)
        .await
        .expect("A's member, once the lock is free");
    assert_eq!(
        member["first_name"], "Adele",
        "A's events were applied in the order they came"
    );
    let (_, audit) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws_a}/audit-log?limit=100"),
            None,
        )
        .await;
    let names: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter_map(|entry| entry["after"]["first_name"].as_str())
        .collect();
    assert_eq!(names, ["Ada", "Adeline", "Adele"]);
}

/// A broker whose API accepts connections and never answers: every pull waits for it.
struct SilentBroker {
    url: String,
    _listener: std::net::TcpListener,
}

impl SilentBroker {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        // Connections are accepted by the system into the backlog and never read: requests hang.
        Self {
            url: format!("http://{}", listener.local_addr().unwrap()),
            _listener: listener,
        }
    }
}

/// With the broker's API silent and twenty workspaces' directories activating (each activation starts
/// a pull that waits for the broker), webhooks of other workspaces keep being acknowledged and applied:
/// no pull holds a database connection while it waits, and at most the configured number run at once.
async fn webhooks_are_acknowledged_while_the_broker_is_down_and_pulls_wait_for_it(
    backend: Backend,
) {
    let broker = SilentBroker::start();
    let url = broker.url.clone();
    let app = spawn_app_with(backend, move |s| {
        s.workos_api_key = Some("sk_test_silent".into());
        s.workos_api_base = url;
        s.pull_on_activation = true;
        s.db_pool_size = 2;
        s.max_concurrent_pulls = 3;
    })
    .await;
    let mut directories = Vec::new();
    for _ in 0..20 {
        let dir = TestDirectory::new();
        app.synced_workspace(&dir.organization_id).await;
        post(&app, &event("dsync.activated", dir.object(&at(0)), &at(0))).await;
        directories.push(dir);
    }
    app.wait_applied().await;
    eventually(
        "three pulls wait for the broker and the others are queued",
        || async {
            let scrape = app.scrape().await;
            let running = sample_value(&scrape, "rollcall_sync_runs_running").unwrap_or(0.0);
            let queued = sample_value(&scrape, "rollcall_sync_runs_queued").unwrap_or(0.0);
            running == 3.0 && queued >= 10.0
        },
    )
    .await;

    let dir = TestDirectory::new();
    let ws = app.create_workspace(&dir.organization_id, "growth").await;
    // Turning sync on asks the silent broker for the organization's directories, in the background.
    app.set_sync(&ws, true).await;
    post(&app, &event("dsync.activated", dir.object(&at(0)), &at(0))).await;
    for i in 0..40 {
        let user = dir.user(
            &format!("directory_user_{i}_{}", dir.tag),
            &format!("idp-{i}"),
            Some(&format!("p{i}-{}@example.com", dir.tag.to_lowercase())),
            "Pat",
            "active",
            &at(1),
        );
        post(&app, &event("dsync.user.created", user, &at(1))).await;
    }
    app.wait_applied().await;
    let (_, members) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/members?limit=100"),
            None,
        )
        .await;
    assert_eq!(members["data"].as_array().unwrap().len(), 40);
    let scrape = app.scrape().await;
    assert_eq!(
        sample_value(&scrape, "rollcall_sync_runs_running"),
        Some(3.0),
        "{scrape}"
    );
    assert_eq!(
        sample_value(
            &scrape,
            "rollcall_webhooks_received_total{outcome=\"unavailable\"}"
        ),
        Some(0.0)
    );
}

/// A TCP proxy to the PostgreSQL server that can be cut and restored, as a database going away.
struct Proxy {
    port: u16,
    accepting: Option<tokio::task::JoinHandle<()>>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the proxy's port");
        let port = listener.local_addr().unwrap().port();
        let connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> =
            Default::default();
        let tracked = connections.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let copied = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tracked.lock().unwrap().push(copied);
            }
        });
        Self {
            port,
            accepting: Some(accepting),
            connections,
        }
    }

    /// Closes every connection and stops listening.
    fn cut(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

/// The database goes away: a webhook is answered 503 at once (the broker retries), not after a wait for a
/// connection per delivery; once it is back, webhooks are stored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_answered_503_at_once_when_the_database_is_down() {
    let database = TestDatabase::new(Backend::Postgres);
    let mut proxy = Proxy::start(0).await;
    let through_proxy = match &database.target {
        rollcall::db::DatabaseTarget::Postgres(url) => url
            .expose_secret()
            .replace(":5432", &format!(":{}", proxy.port)),
        other => unreachable!("{other:?}"),
    };
    assert!(
        postgres_url().contains(":5432"),
        "the proxy forwards to 127.0.0.1:5432"
    );
    let target = rollcall::db::DatabaseTarget::Postgres(through_proxy.into());
    let app = spawn_app_on(target, |_| {}).await;
    let dir = TestDirectory::new();
    activated(&app, &dir).await;
    post(&app, &person(&dir, "dsync.user.created", "Ada", 1)).await;

    proxy.cut();
    for minute in 2..6 {
        let started = Instant::now();
        let response = app
            .post_webhook(
                person(&dir, "dsync.user.updated", "Ada", minute)
                    .to_string()
                    .as_bytes(),
            )
            .await;
        let took = started.elapsed();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Half a second of waiting for intake's connection, and a margin for a loaded machine: well short
        // of the five seconds a pooled connection would have been waited for.
        assert!(
            took < Duration::from_millis(2500),
            "answered after {took:?}"
        );
    }

    let restored = Proxy::start(proxy.port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = app
            .post_webhook(
                person(&dir, "dsync.user.updated", "Adele", 9)
                    .to_string()
                    .as_bytes(),
            )
            .await;
        if response.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stored again once the database is back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(restored);
    drop(database);
}
