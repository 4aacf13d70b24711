//! Test harness: the real service on port 0, on a fresh SQLite file or a fresh PostgreSQL schema.

use diesel::connection::SimpleConnection;
use diesel::Connection;
use reqwest::{Method, Response, StatusCode};
use rollcall::config::Settings;
use rollcall::db::{Database, DatabaseTarget};
use rollcall::intake::applier::RetryPolicy;
use rollcall::startup::Application;
use rollcall::workos::signature;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use: `ROLLCALL_TEST_POSTGRES_URL`, else the local one.
pub fn postgres_url() -> String {
    std::env::var("ROLLCALL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh, empty database that is removed when dropped.
pub struct TestDatabase {
    pub target: DatabaseTarget,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

impl TestDatabase {
    pub fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let path = dir.path().join("rollcall.db");
                TestDatabase {
                    target: DatabaseTarget::Sqlite(path.display().to_string()),
                    _dir: Some(dir),
                    schema: None,
                }
            }
            Backend::Postgres => {
                let base = postgres_url();
                let schema = format!("test_{}", ulid::Ulid::new().to_string().to_lowercase());
                let mut admin = diesel::PgConnection::establish(&base).unwrap_or_else(|e| {
                    panic!("PostgreSQL tests need a server at {base} (set ROLLCALL_TEST_POSTGRES_URL): {e}")
                });
                admin
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .expect("create a test schema");
                let separator = if base.contains('?') { '&' } else { '?' };
                TestDatabase {
                    target: DatabaseTarget::Postgres(
                        format!("{base}{separator}options=-csearch_path%3D{schema}").into(),
                    ),
                    _dir: None,
                    schema: Some(schema),
                }
            }
        }
    }

    /// Connects and migrates.
    pub fn open(&self) -> Database {
        let db = Database::connect(self.target.clone(), 2).expect("connect to the test database");
        db.migrate().expect("migrate the test database");
        db
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(schema) = &self.schema {
            if let Ok(mut admin) = diesel::PgConnection::establish(&postgres_url()) {
                let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

pub const OPERATOR_TOKEN: &str = "operator-test-token-0123456789abcdef";
pub const SECRET: &str = "whsec_test_secret";

/// The service under test.
pub struct TestApp {
    pub address: String,
    shutdown: rollcall::startup::ShutdownHandle,
    pub client: reqwest::Client,
    pub db: Database,
    /// The database this app created; `None` for a second instance sharing another app's.
    _database: Option<TestDatabase>,
}

/// Settings for a test service on `target`, listening on a free port.
pub fn test_settings(target: DatabaseTarget) -> Settings {
    let mut settings = Settings::from_lookup(|_| None).expect("default settings");
    settings.database = target;
    settings.bind = "127.0.0.1:0".parse().unwrap();
    settings.webhook_secrets = vec![SECRET.into()];
    settings.operator_token = Some(OPERATOR_TOKEN.into());
    // Many tests run at once against one PostgreSQL server: keep each one's share of connections small.
    settings.db_pool_size = 4;
    // Pulls start only when a test asks: tests of the automatic triggers turn them on.
    settings.pull_on_activation = false;
    // Automatic pulls follow each other at once: the test of their spacing sets it.
    settings.automatic_pull_spacing = Duration::ZERO;
    // The Events API tail runs only in the tests that turn it on.
    settings.events_poll_interval = Duration::ZERO;
    settings
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let database = TestDatabase::new(backend);
    let mut app = spawn_app_on(database.target.clone(), adjust).await;
    app._database = Some(database);
    app
}

/// Another instance of the service on an existing database, as several processes share one PostgreSQL.
pub async fn spawn_app_on(target: DatabaseTarget, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    start_app(target, None, adjust).await
}

/// A service on an existing database, serving on `listener` (the test keeps the address, to give it to
/// the next instance).
pub async fn spawn_app_serving(
    target: DatabaseTarget,
    listener: std::net::TcpListener,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    start_app(target, Some(listener), adjust).await
}

async fn start_app(
    target: DatabaseTarget,
    listener: Option<std::net::TcpListener>,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(target);
    adjust(&mut settings);
    let retry = RetryPolicy {
        max_attempts: 3,
        first_backoff: Duration::from_millis(10),
    };
    let app = match listener {
        Some(listener) => Application::build_on(settings, retry, listener),
        None => Application::build_with(settings, retry),
    }
    .expect("the service builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let db = app.database().clone();
    let shutdown = app.shutdown_handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        shutdown,
        client: reqwest::Client::new(),
        db,
        _database: None,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Let the background threads end, so their database connections close with the test.
        self.shutdown.stop();
    }
}

impl TestApp {
    /// Sends a webhook signed now with the test secret.
    pub async fn post_webhook(&self, body: &[u8]) -> Response {
        let header = signature::sign(SECRET, signature::now_ms(), body);
        self.post_webhook_with(body, Some(&header)).await
    }

    /// Sends a webhook with the given signature header (or none).
    pub async fn post_webhook_with(&self, body: &[u8], header: Option<&str>) -> Response {
        let mut request = self
            .client
            .post(format!("{}/webhooks/workos", self.address))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(header) = header {
            request = request.header("WorkOS-Signature", header);
        }
        request.send().await.expect("the webhook request is sent")
    }

    /// Stops this instance's applier; webhooks are still acknowledged and stored.
    pub fn stop_applier(&self) {
        self.shutdown.stop_applier();
    }

    /// Sends events in order, each signed, and waits until all are applied.
    pub async fn deliver(&self, events: &[Value]) {
        for event in events {
            let response = self.post_webhook(event.to_string().as_bytes()).await;
            assert_eq!(response.status(), StatusCode::OK, "{event}");
        }
        self.wait_applied().await;
    }

    /// Waits until no stored event is waiting to be applied.
    pub async fn wait_applied(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let db = self.db.clone();
            let waiting = tokio::task::spawn_blocking(move || waiting_events(&db))
                .await
                .unwrap();
            if waiting == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{waiting} event(s) still waiting after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An API call with a bearer token; returns the status and the JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API request is sent");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// The app's database as `DATABASE_URL` names it, for a command run on it.
    pub fn database_url(&self) -> String {
        use rollcall::secret::ExposeSecret;
        match self.db.target() {
            DatabaseTarget::Sqlite(path) => format!("sqlite://{path}"),
            DatabaseTarget::Postgres(url) => url.expose_secret().to_owned(),
        }
    }

    /// An operator call.
    pub async fn op(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(OPERATOR_TOKEN), body).await
    }

    /// Creates a workspace for `organization_id` on `plan`; returns its id.
    pub async fn create_workspace(&self, organization_id: &str, plan: &str) -> String {
        let (status, body) = self
            .op(
                Method::POST,
                "/api/v1/workspaces",
                Some(json!({ "name": format!("Workspace of {organization_id}"), "plan": plan, "organization_id": organization_id })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Creates a growth workspace with directory sync on; returns its id.
    pub async fn synced_workspace(&self, organization_id: &str) -> String {
        let ws = self.create_workspace(organization_id, "growth").await;
        self.set_sync(&ws, true).await;
        ws
    }

    pub async fn set_sync(&self, ws: &str, enabled: bool) {
        let (status, body) = self
            .op(
                Method::PUT,
                &format!("/api/v1/workspaces/{ws}/directory-sync"),
                Some(json!({ "enabled": enabled })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// All members of a workspace, as the API lists them.
    pub async fn members(&self, ws: &str) -> Vec<Value> {
        let (status, body) = self
            .op(
                Method::GET,
                &format!("/api/v1/workspaces/{ws}/members?limit=1000"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// The member with this email, if any.
    pub async fn member(&self, ws: &str, email: &str) -> Option<Value> {
        self.members(ws).await.into_iter().find(|m| {
            m["email"]
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }

    /// The stored events with this broker event id, oldest first.
    pub async fn deliveries(&self, event_id: &str) -> Vec<Value> {
        let (status, body) = self
            .op(Method::GET, "/api/v1/events?limit=1000", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut found: Vec<Value> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_id"] == event_id)
            .cloned()
            .collect();
        found.reverse();
        found
    }

    /// `GET /metrics`, which must answer 200 in the Prometheus text format.
    pub async fn scrape(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .expect("the scrape is sent");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        response.text().await.unwrap()
    }

    /// Creates a workspace admin token; returns it.
    pub async fn admin_token(&self, ws: &str) -> String {
        let (status, body) = self
            .op(
                Method::POST,
                &format!("/api/v1/workspaces/{ws}/admin-tokens"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_string()
    }
}

/// How many stored events wait for the applier.
pub fn waiting_events(db: &Database) -> i64 {
    use diesel::prelude::*;
    use rollcall::db::schema::webhook_events;
    db.read(|conn| {
        webhook_events::table
            .filter(webhook_events::status.eq("received"))
            .count()
            .get_result::<i64>(conn)
            .map_err(rollcall::db::DbError::from)
    })
    .expect("count waiting events")
}

/// Declares each listed `async fn(TestApp)` as a test on SQLite and on PostgreSQL; with `backend:` first,
/// each listed `async fn(Backend)`, for tests that start their own services.
#[macro_export]
macro_rules! on_both_backends {
    (backend: $($name:ident),+ $(,)?) => {
        $crate::on_both_backends!(@each |backend| backend; $($name),+);
    };
    ($($name:ident),+ $(,)?) => {
        $crate::on_both_backends!(@each |backend| $crate::helpers::spawn_app(backend).await; $($name),+);
    };
    (@each |$backend:ident| $argument:expr; $($name:ident),+) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $backend = $crate::helpers::Backend::Sqlite;
                    super::$name($argument).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $backend = $crate::helpers::Backend::Postgres;
                    super::$name($argument).await
                }
            )+
        }
    };
}

/// The emails of the members a page of members lists, sorted.
pub fn sorted_emails(page: &Value) -> Vec<String> {
    let mut emails: Vec<String> = page["data"]
        .as_array()
        .expect("a page of members")
        .iter()
        .map(|m| m["email"].as_str().unwrap_or_default().to_string())
        .collect();
    emails.sort();
    emails
}

/// How many audit entries are stored.
pub fn audit_entries(db: &Database) -> i64 {
    use diesel::prelude::*;
    use rollcall::db::schema::audit_log;
    db.read(|conn| {
        audit_log::table
            .count()
            .get_result::<i64>(conn)
            .map_err(rollcall::db::DbError::from)
    })
    .expect("count audit entries")
}

/// `PROPTEST_CASES`, or `default`, cases for a property test, with no file of past failures.
pub fn proptest_config(default: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// One case of a property, checked against a service.
pub type PropertyCheck<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), proptest::test_runner::TestCaseError>> + 'a>,
>;

/// Runs a property over one service on `backend`, `default` cases (or `PROPTEST_CASES`), each case's check
/// on the service's runtime; panics with the minimal failing case.
pub fn check_property<S: proptest::strategy::Strategy>(
    backend: Backend,
    default: u32,
    strategy: S,
    check: impl for<'a> Fn(&'a TestApp, S::Value) -> PropertyCheck<'a>,
) where
    S::Value: std::fmt::Debug,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_app(backend));
    let mut runner = proptest::test_runner::TestRunner::new(proptest_config(default));
    let outcome = runner.run(&strategy, |value| runtime.block_on(check(&app, value)));
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// A request header's value as text; empty when it is absent or not text.
pub fn header(request: &actix_web::HttpRequest, name: &str) -> String {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A small HTTP server on a port of its own on loopback, answering every request with `handler`, run on
/// the test's runtime; returns its base URL and its handle.
pub fn serve_http<H, Args>(handler: H) -> (String, actix_web::dev::ServerHandle)
where
    H: actix_web::Handler<Args> + Send,
    Args: actix_web::FromRequest + 'static,
    H::Output: actix_web::Responder + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port on loopback");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().default_service(actix_web::web::to(handler.clone()))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .expect("the server listens")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (url, handle)
}
