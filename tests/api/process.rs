//! The `rollcall` binary as an operator runs it: start-up errors, help, a clean stop on SIGTERM, and one
//! service per SQLite file.

use crate::helpers::{Backend, TestDatabase, OPERATOR_TOKEN, SECRET};
use diesel::prelude::*;
use rollcall::db::DatabaseTarget;
use rollcall::secret::ExposeSecret;
use serde_json::{json, Value};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `rollcall` binary with an empty environment.
pub fn rollcall() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// `rollcall <args>` on the app's database (`DATABASE_URL`) with `env` besides: whether it succeeded, its
/// stdout and its stderr.
pub async fn on_database(
    app: &crate::helpers::TestApp,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String, String) {
    let mut command = rollcall();
    command.args(args).env("DATABASE_URL", app.database_url());
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_unreachable_database_stops_start_up_with_the_cause() {
    let output = rollcall()
        .arg("migrate")
        .env(
            "DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot connect to the database"),
        "{stderr}"
    );
    assert!(stderr.contains("127.0.0.1"), "{stderr}");
}

#[test]
fn a_bad_setting_is_named() {
    let output = rollcall()
        .arg("serve")
        .env("DATABASE_URL", "mysql://db/x")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn weak_webhook_settings_stop_start_up_by_name_and_no_secret_is_printed() {
    for (name, value, secret) in [
        ("WORKOS_WEBHOOK_SECRETS", "hunter2", Some("hunter2")),
        ("WORKOS_WEBHOOK_TOLERANCE", "3650d", None),
        (
            "DATABASE_URL",
            "mysql://app:s3cret-pass@db.internal/rollcall",
            Some("s3cret"),
        ),
    ] {
        let output = rollcall()
            .arg("serve")
            .env("WORKOS_WEBHOOK_SECRETS", SECRET)
            .env(name, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}={value} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{stderr}");
        if let Some(secret) = secret {
            assert!(!stderr.contains(secret), "{stderr}");
        }
    }
}

#[test]
fn every_command_explains_itself() {
    for command in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["replay", "--help"],
        vec!["migrate", "--help"],
        vec!["token", "create", "--help"],
    ] {
        let output = rollcall().args(&command).output().unwrap();
        assert!(output.status.success(), "{command:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Usage"),
            "{command:?}"
        );
    }
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let database = TestDatabase::new(Backend::Sqlite);
    let rollcall::db::DatabaseTarget::Sqlite(path) = &database.target else {
        unreachable!()
    };
    let mut command = rollcall();
    command
        .arg("serve")
        .env("DATABASE_URL", format!("sqlite://{path}"))
        .env("WORKOS_WEBHOOK_SECRETS", SECRET)
        .env("RUST_LOG", "info");
    // Ready once /healthz answers: the signal handlers are installed by then.
    let started = Started::start(command);
    let (exit, log) = started.stop(Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}\n{log}");
    for fact in [
        "database ready",
        "webhook secrets configured",
        "listening",
        "stopped cleanly",
    ] {
        assert!(log.contains(fact), "missing {fact:?} in\n{log}");
    }
}

/// A `rollcall serve` process listening where the system put it (`ROLLCALL_BIND=127.0.0.1:0`): its port is
/// read from its "listening" log line, so no port is reserved and released for it first. Its log is read as
/// it comes, so a full pipe never holds it up; it is killed when dropped.
pub struct Started {
    pub serving: Serving,
    pub port: u16,
    log: std::thread::JoinHandle<String>,
}

impl Started {
    /// Starts `command` (a `serve`, or a shell that becomes one) and waits until it answers `/healthz`.
    pub fn start(mut command: Command) -> Self {
        command
            .env("ROLLCALL_BIND", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("rollcall serve starts");
        let stderr = child.stderr.take().expect("its log");
        let (found, listening) = std::sync::mpsc::channel();
        let log = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut log = String::new();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(port) = listening_port(&line) {
                    let _ = found.send(port);
                }
                log.push_str(&line);
                log.push('\n');
            }
            log
        });
        let serving = Serving(child);
        let Ok(port) = listening.recv_timeout(Duration::from_secs(30)) else {
            drop(serving);
            panic!(
                "rollcall serve never said where it listens:\n{}",
                log.join().unwrap_or_default()
            );
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !healthy(port) {
            assert!(
                Instant::now() < deadline,
                "the server on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Started { serving, port, log }
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.serving.0.id()
    }

    /// Sends SIGTERM, waits up to `patience` for the process to end, and returns how it ended and its log.
    pub fn stop(mut self, patience: Duration) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let stopping = Instant::now();
        let exit = loop {
            if let Some(exit) = self.serving.0.try_wait().unwrap() {
                break exit;
            }
            assert!(
                stopping.elapsed() < patience,
                "the service did not stop within {patience:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        (exit, self.log.join().unwrap_or_default())
    }
}

/// The port of the "listening" log line, in the text or the JSON format.
fn listening_port(line: &str) -> Option<u16> {
    if !line.contains("listening for webhooks") {
        return None;
    }
    let (_, rest) = line.split_once("127.0.0.1:")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A `rollcall serve` process, killed when dropped.
pub struct Serving(pub std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_serve_on_the_same_sqlite_file_is_refused() {
    let database = TestDatabase::new(Backend::Sqlite);
    let rollcall::db::DatabaseTarget::Sqlite(path) = &database.target else {
        unreachable!()
    };
    let serve = || {
        let mut command = rollcall();
        command
            .arg("serve")
            .env("DATABASE_URL", format!("sqlite://{path}"));
        command
    };
    let first = Started::start(serve());
    let port = first.port;
    let second = serve()
        .env("ROLLCALL_BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!second.status.success(), "a second serve must not start");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another `rollcall serve` is already using the SQLite file")
            && stderr.contains(path.as_str())
            && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
    assert!(healthy(port), "the first server keeps serving");
}

#[test]
fn serve_raises_its_open_file_limit_for_its_connections() {
    let database = TestDatabase::new(Backend::Sqlite);
    let rollcall::db::DatabaseTarget::Sqlite(path) = &database.target else {
        unreachable!()
    };
    // A soft limit too low for 2,000 connections, under a hard limit that allows them: set by the shell,
    // which then becomes the service (same process).
    let mut command = Command::new("sh");
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ROLLCALL", env!("CARGO_BIN_EXE_rollcall"))
        .args([
            "-c",
            r#"ulimit -S -n 256 && ulimit -H -n 4096 && exec "$ROLLCALL" serve"#,
        ])
        .env("DATABASE_URL", format!("sqlite://{path}"))
        .env("ROLLCALL_MAX_CONNECTIONS", "2000");
    let serving = Started::start(command);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", serving.id())).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    // 2,000 connections and 256 other files, under the hard limit.
    assert_eq!(open_files[3..5], ["2256", "4096"], "{limits}");
}

/// Whether a service answers `/healthz` on the port.
pub fn healthy(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

#[test]
fn token_create_prints_a_token_that_is_stored_hashed() {
    let database = TestDatabase::new(Backend::Sqlite);
    let rollcall::db::DatabaseTarget::Sqlite(path) = &database.target else {
        unreachable!()
    };
    let output = rollcall()
        .args(["token", "create"])
        .env("DATABASE_URL", format!("sqlite://{path}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("rc_") && token.len() > 40, "{token}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("operator token"));
    let db = database.open();
    let hashes: Vec<String> = db
        .read(|c| {
            use diesel::prelude::*;
            rollcall::db::schema::api_tokens::table
                .select(rollcall::db::schema::api_tokens::token_hash)
                .load(c)
                .map_err(rollcall::db::DbError::from)
        })
        .unwrap();
    assert_eq!(hashes, [rollcall::tokens::hash_token(&token)]);
    let missing = rollcall()
        .args(["token", "create", "--workspace", "ws_nope"])
        .env("DATABASE_URL", format!("sqlite://{path}"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no workspace ws_nope"));
}

crate::on_both_backends!(
    backend: sigterm_ends_a_pull_in_flight_as_interrupted_and_the_process_exits,
);

/// A broker that lists one directory of organization `org_stop` and no groups, and answers the users'
/// listing and the Events API only after a minute: a pull and the tail are caught waiting for it. Counts
/// the users' listings asked for.
fn slow_broker() -> (String, Arc<AtomicU32>, actix_web::dev::ServerHandle) {
    use actix_web::{HttpRequest, HttpResponse};
    let users_asked = Arc::new(AtomicU32::new(0));
    let asked = users_asked.clone();
    let page = |data: Value| {
        HttpResponse::Ok().json(json!({"object": "list", "data": data, "list_metadata": {"before": null, "after": null}}))
    };
    let (url, handle) = crate::helpers::serve_http(move |request: HttpRequest| {
        let asked = asked.clone();
        async move {
            match request.path() {
                "/directories" => page(json!([{
                    "object": "directory", "id": "directory_stop", "organization_id": "org_stop",
                    "type": "okta scim v2.0", "state": "active", "name": "Stop",
                    "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z"
                }])),
                "/directory_groups" => page(json!([])),
                path => {
                    if path == "/directory_users" {
                        asked.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    page(json!([]))
                }
            }
        }
    });
    (url, users_asked, handle)
}

/// SIGTERM while a pull waits for the broker and the Events API tail reads: the pull stops, its run is
/// recorded `failed` (interrupted) instead of being left `running`, every background task ends, and the
/// process exits cleanly well before the broker would have answered.
async fn sigterm_ends_a_pull_in_flight_as_interrupted_and_the_process_exits(backend: Backend) {
    let database = TestDatabase::new(backend);
    let database_url = match &database.target {
        DatabaseTarget::Sqlite(path) => format!("sqlite://{path}"),
        DatabaseTarget::Postgres(url) => url.expose_secret().to_owned(),
    };
    let (broker_url, users_asked, broker) = slow_broker();
    let mut command = rollcall();
    command
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("WORKOS_WEBHOOK_SECRETS", SECRET)
        .env("ROLLCALL_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("WORKOS_API_KEY", "sk_test_slow")
        .env("WORKOS_API_BASE", &broker_url)
        .env("ROLLCALL_EVENTS_POLL_INTERVAL", "1s")
        .env("RUST_LOG", "info");
    let started = tokio::task::spawn_blocking(move || Started::start(command))
        .await
        .unwrap();
    let port = started.port;
    let deadline = Instant::now() + Duration::from_secs(30);
    // A workspace turning directory sync on finds the directory at the broker and pulls it.
    let client = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let created: Value = client
        .post(format!("{api}/workspaces"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"name": "Stopping", "plan": "growth", "organization_id": "org_stop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let workspace = created["id"].as_str().expect("a workspace").to_owned();
    let enabled = client
        .put(format!("{api}/workspaces/{workspace}/directory-sync"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert!(enabled.status().is_success(), "{}", enabled.status());
    while users_asked.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the pull never asked for the users"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db = database.open();
    let runs = || {
        db.read(|c| {
            rollcall::db::schema::sync_runs::table
                .select((
                    rollcall::db::schema::sync_runs::status,
                    rollcall::db::schema::sync_runs::error,
                ))
                .load::<(String, Option<String>)>(c)
                .map_err(rollcall::db::DbError::from)
        })
        .unwrap()
    };
    assert_eq!(runs(), [("running".to_string(), None)]);

    let (exit, log) = tokio::task::spawn_blocking(move || started.stop(Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}\n{log}");
    for fact in ["sync run interrupted", "stopped cleanly"] {
        assert!(log.contains(fact), "missing {fact:?} in\n{log}");
    }
    assert!(!log.contains("did not stop within"), "{log}");
    assert_eq!(
        runs(),
        [(
            "failed".to_string(),
            Some(rollcall::sync_runs::INTERRUPTED_BY_SHUTDOWN.to_string())
        )]
    );
    drop(broker.stop(false));
}

/// With JSON logs and `rollcall::intake=debug`, one delivery can be followed: the request that brought it
/// (its request id) stored it under its event id, and the batch of its directory's lane settled it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_can_be_followed_in_the_logs_from_its_request_to_its_batch() {
    let database = TestDatabase::new(Backend::Sqlite);
    let DatabaseTarget::Sqlite(path) = &database.target else {
        unreachable!()
    };
    let mut command = rollcall();
    command
        .arg("serve")
        .env("DATABASE_URL", format!("sqlite://{path}"))
        .env("WORKOS_WEBHOOK_SECRETS", SECRET)
        .env("ROLLCALL_LOG_FORMAT", "json")
        .env("RUST_LOG", "info,rollcall::intake=debug");
    let started = tokio::task::spawn_blocking(move || Started::start(command))
        .await
        .unwrap();
    let port = started.port;
    let deadline = Instant::now() + Duration::from_secs(30);
    let event_id = format!("event_follow_{}", crate::broker::unique());
    let body = json!({
        "id": event_id, "event": "dsync.user.created", "created_at": "2026-01-01T00:00:00.000Z",
        "data": {"id": "directory_user_follow", "directory_id": "directory_follow", "organization_id": "org_follow",
            "idp_id": "follow", "email": "follow@example.com", "state": "active",
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z"}
    })
    .to_string();
    let signed = rollcall::workos::signature::sign(
        SECRET,
        rollcall::workos::signature::now_ms(),
        body.as_bytes(),
    );
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/webhooks/workos"))
        .header("content-type", "application/json")
        .header("WorkOS-Signature", signed)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    // Settled once the applier has moved it on from `received`.
    let db = database.open();
    loop {
        let status: Vec<String> = db
            .read(|c| {
                rollcall::db::schema::webhook_events::table
                    .filter(rollcall::db::schema::webhook_events::event_id.eq(&event_id))
                    .select(rollcall::db::schema::webhook_events::status)
                    .load(c)
                    .map_err(rollcall::db::DbError::from)
            })
            .unwrap();
        if status.iter().any(|s| s != "received") {
            break;
        }
        assert!(Instant::now() < deadline, "the delivery was not applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, log) = tokio::task::spawn_blocking(move || started.stop(Duration::from_secs(20)))
        .await
        .unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let saying = |message: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    };
    let span = |line: &Value, name: &str| -> Value {
        line["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let stored = saying("delivery stored");
    let stored = stored
        .iter()
        .find(|l| span(l, "store_delivery")["event_id"] == event_id.as_str())
        .unwrap_or_else(|| panic!("no stored delivery in\n{log}"));
    let request = span(stored, "request");
    assert_eq!(request["path"], "/webhooks/workos", "{stored}");
    let request_id = request["request_id"].as_str().expect("a request id");
    assert_eq!(
        span(stored, "store_delivery")["directory_id"],
        "directory_follow"
    );
    assert!(
        saying("answered")
            .iter()
            .any(|l| span(l, "request")["request_id"] == request_id && l["fields"]["status"] == 200),
        "the request's answer is not logged under its id in\n{log}"
    );
    let settled = saying("delivery settled");
    let settled = settled
        .iter()
        .find(|l| l["fields"]["event_id"] == event_id.as_str())
        .unwrap_or_else(|| panic!("no settled delivery in\n{log}"));
    assert_eq!(
        span(settled, "apply_batch")["lane"],
        "directory_follow",
        "{settled}"
    );
}
