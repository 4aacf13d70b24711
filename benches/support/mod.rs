//! What the benchmarks share: scratch databases, the real service, and many concurrent signed senders.

#![allow(dead_code)]

use diesel::connection::SimpleConnection;
use diesel::Connection;
use rollcall::config::Settings;
use rollcall::db::{Database, DatabaseTarget};
use rollcall::secret::ExposeSecret;
use rollcall::startup::Application;
use rollcall::workos::signature;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SECRET: &str = "whsec_bench_0123456789";
pub const OPERATOR: &str = "bench-operator-token-0123456789abcdef";

/// A number from the environment, else `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and gets a quick smoke pass.
pub fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The backends to measure: `BENCH_BACKENDS`, default both.
pub fn backends() -> Vec<String> {
    std::env::var("BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgresql".into())
        .split(',')
        .map(|b| b.trim().to_string())
        .collect()
}

/// A fresh database: a temporary SQLite file or a PostgreSQL schema, removed when dropped.
pub struct Scratch {
    pub target: DatabaseTarget,
    _dir: Option<tempfile::TempDir>,
    drop_schema: Option<(String, String)>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some((url, schema)) = &self.drop_schema {
            if let Ok(mut c) = diesel::PgConnection::establish(url) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

pub fn scratch(backend: &str) -> Scratch {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db").display().to_string();
        Scratch {
            target: DatabaseTarget::Sqlite(path),
            _dir: Some(dir),
            drop_schema: None,
        }
    } else {
        let url = std::env::var("BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("bench_{}", ulid::Ulid::new().to_string().to_lowercase());
        diesel::PgConnection::establish(&url)
            .expect("PostgreSQL for the benchmark")
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        Scratch {
            target: DatabaseTarget::Postgres(
                format!("{url}{sep}options=-csearch_path%3D{schema}").into(),
            ),
            _dir: None,
            drop_schema: Some((url, schema)),
        }
    }
}

/// The service running in the benchmark's process.
pub struct Service {
    /// Its base URL.
    pub base: String,
    pub db: Database,
    shutdown: rollcall::startup::ShutdownHandle,
    serving: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Service {
    /// Stops the service and waits until it and its background work have ended, so that nothing of it
    /// runs while its scratch database is removed or the process exits.
    pub async fn stop(self) {
        self.shutdown.stop();
        if let Ok(Err(error)) = self.serving.await {
            eprintln!("the service ended with an error: {error:#}");
        }
    }
}

/// The service on `target`, listening on a free port.
pub fn start_service(target: DatabaseTarget) -> Service {
    start_service_with(target, |_| {})
}

/// The service on `target` with settings of the benchmark's (`adjust`), listening on a free port.
pub fn start_service_with(target: DatabaseTarget, adjust: impl FnOnce(&mut Settings)) -> Service {
    let mut settings = Settings::from_lookup(|_| None).unwrap();
    settings.database = target;
    settings.bind = "127.0.0.1:0".parse().unwrap();
    settings.webhook_secrets = vec![SECRET.into()];
    settings.operator_token = Some(OPERATOR.into());
    settings.db_pool_size = 16;
    adjust(&mut settings);
    let app = Application::build(settings).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let db = app.database().clone();
    let shutdown = app.shutdown_handle();
    let serving = tokio::spawn(app.run_until_stopped());
    Service {
        base,
        db,
        shutdown,
        serving,
    }
}

/// An operator call; panics unless the status is `expect`.
pub async fn operator(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<serde_json::Value>,
    expect: u16,
) -> serde_json::Value {
    let mut request = client.request(method, &url).bearer_auth(OPERATOR);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, expect, "{url}: {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// Creates a workspace for `organization` with directory sync on; returns its id.
pub async fn synced_workspace(client: &reqwest::Client, base: &str, organization: &str) -> String {
    let ws = operator(
        client,
        reqwest::Method::POST,
        format!("{base}/api/v1/workspaces"),
        Some(json!({"name": "Bench", "plan": "enterprise", "organization_id": organization})),
        201,
    )
    .await;
    let ws = ws["id"].as_str().unwrap().to_string();
    operator(
        client,
        reqwest::Method::PUT,
        format!("{base}/api/v1/workspaces/{ws}/directory-sync"),
        Some(json!({"enabled": true})),
        200,
    )
    .await;
    ws
}

/// Asks for a full pull of `directory`; while another run of it (such as the pull that turning directory
/// sync on starts) is in progress, waits for that one to end and asks again. Returns the new run's id.
async fn start_pull(client: &reqwest::Client, base: &str, directory: &str) -> String {
    let url = format!("{base}/api/v1/directories/{directory}/resync");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let response = client
            .post(&url)
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        match status {
            202 => return body["run_id"].as_str().unwrap().to_string(),
            409 if body["code"] == "sync_in_progress" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(25)).await
            }
            _ => panic!("{url}: {status} {body}"),
        }
    }
}

/// Starts a full pull of `directory` and waits for its end; returns the finished run and the wall time.
pub async fn pull(
    client: &reqwest::Client,
    base: &str,
    directory: &str,
) -> (serde_json::Value, Duration) {
    let started = Instant::now();
    let run = start_pull(client, base, directory).await;
    loop {
        let body = operator(
            client,
            reqwest::Method::GET,
            format!("{base}/api/v1/sync-runs/{run}"),
            None,
            200,
        )
        .await;
        match body["status"].as_str() {
            Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(25)).await,
            Some("succeeded") => return (body, started.elapsed()),
            other => panic!("the pull ended {other:?}: {body}"),
        }
    }
}

/// What a burst of webhooks measured.
pub struct Delivery {
    pub events_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub applied_per_s: f64,
}

/// Signs every body now and posts them from `senders` concurrent tasks; then waits until all are applied.
pub async fn deliver_all(
    base: &str,
    db: &Database,
    bodies: Vec<Vec<u8>>,
    senders: usize,
) -> Delivery {
    let count = bodies.len();
    let now = signature::now_ms();
    let signed: Vec<(Vec<u8>, String)> = bodies
        .into_iter()
        .map(|body| {
            let header = signature::sign(SECRET, now, &body);
            (body, header)
        })
        .collect();
    let queue = Arc::new(Mutex::new(signed));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .build()
        .unwrap();
    let url = format!("{base}/webhooks/workos");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (queue, client, url) = (queue.clone(), client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some((body, header)) = queue.lock().unwrap().pop() else {
                    break;
                };
                latencies.push(post_signed(&client, &url, body, header).await);
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    wait_applied(db).await;
    Delivery {
        events_per_s: count as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile_ms(&latencies, 0.50),
        p99_ms: percentile_ms(&latencies, 0.99),
        applied_per_s: count as f64 / started.elapsed().as_secs_f64(),
    }
}

/// Signs `body` now and posts it to the service at `base`; returns the status (0 when no answer came) and
/// how long the answer took.
pub async fn sign_and_post(client: &reqwest::Client, base: &str, body: Vec<u8>) -> (u16, Duration) {
    let header = signature::sign(SECRET, signature::now_ms(), &body);
    let sent = Instant::now();
    let status = client
        .post(format!("{base}/webhooks/workos"))
        .header("content-type", "application/json")
        .header("WorkOS-Signature", header)
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    (status, sent.elapsed())
}

/// The ids of the first `limit` directory groups of a workspace.
pub async fn directory_group_ids(
    client: &reqwest::Client,
    base: &str,
    ws: &str,
    limit: usize,
) -> Vec<String> {
    let groups = operator(
        client,
        reqwest::Method::GET,
        format!("{base}/api/v1/workspaces/{ws}/directory-groups?limit={limit}"),
        None,
        200,
    )
    .await;
    groups["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect()
}

/// Links the first `linked` directory groups to a team each and maps two of them to roles.
pub async fn link_teams_and_roles(client: &reqwest::Client, base: &str, ws: &str, linked: usize) {
    let groups = directory_group_ids(client, base, ws, linked).await;
    for (i, group) in groups.iter().enumerate() {
        let team = operator(
            client,
            reqwest::Method::POST,
            format!("{base}/api/v1/workspaces/{ws}/teams"),
            Some(serde_json::json!({ "name": format!("Team {i}") })),
            201,
        )
        .await;
        let team = team["id"].as_str().unwrap();
        operator(
            client,
            reqwest::Method::POST,
            format!("{base}/api/v1/workspaces/{ws}/teams/{team}/directory-groups"),
            Some(serde_json::json!({ "group_id": group })),
            201,
        )
        .await;
    }
    let mappings: Vec<serde_json::Value> = groups
        .iter()
        .take(2)
        .zip(["admin", "builder"])
        .map(|(g, role)| serde_json::json!({ "group_id": g, "role": role }))
        .collect();
    operator(
        client,
        reqwest::Method::PUT,
        format!("{base}/api/v1/workspaces/{ws}/role-mappings"),
        Some(serde_json::Value::Array(mappings)),
        200,
    )
    .await;
}

/// Posts one signed webhook; returns how long its acknowledgement took, which must be a 200.
pub async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    header: String,
) -> Duration {
    let sent = Instant::now();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("WorkOS-Signature", header)
        .body(body)
        .send()
        .await
        .expect("the webhook is sent");
    assert_eq!(response.status(), 200);
    sent.elapsed()
}

/// Waits until no stored event waits for the applier.
pub async fn wait_applied(db: &Database) {
    loop {
        let db = db.clone();
        let waiting = tokio::task::spawn_blocking(move || {
            use diesel::prelude::*;
            use rollcall::db::schema::webhook_events as e;
            db.read(|c| {
                e::table
                    .filter(e::status.eq("received"))
                    .count()
                    .get_result::<i64>(c)
                    .map_err(rollcall::db::DbError::from)
            })
        })
        .await
        .unwrap()
        .unwrap();
        if waiting == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A two-thread runtime like the service's machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A child process killed when dropped.
pub struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    /// The most memory the process has held (VmHWM), in MiB.
    pub fn peak_mib(&self) -> f64 {
        self.status_mib("VmHWM:")
    }

    /// The memory the process holds now (VmRSS), in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS:")
    }

    /// The address space the process has reserved now (VmSize), in MiB: allocations whose pages were
    /// never written count here and not in VmRSS.
    pub fn virtual_mib(&self) -> f64 {
        self.status_mib("VmSize:")
    }

    /// A size line of `/proc/PID/status`, in MiB (NaN when it cannot be read).
    fn status_mib(&self, field: &str) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn spawn(args: &[&str], env: &[(&str, String)]) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    Process(command.spawn().expect("the rollcall binary starts"))
}

/// A `rollcall dev-broker` process holding a generated directory of `users` users in `groups` groups (three
/// memberships each), its pull API taking `api_key`; returns it and its base URL (it may still be starting).
pub fn dev_broker(users: usize, groups: usize, api_key: &str) -> (Process, String) {
    let port = free_port();
    let process = spawn(
        &[
            "dev-broker",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--api-key",
            api_key,
            "--users",
            &users.to_string(),
            "--groups",
            &groups.to_string(),
            "--memberships-per-user",
            "3",
        ],
        &[],
    );
    (process, format!("http://127.0.0.1:{port}"))
}

/// Runs `rollcall` with `args` to its end, which must be a success; returns its wall time and what it printed.
pub async fn run_to_end(args: &[&str], env: &[(&str, String)]) -> (Duration, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    let started = Instant::now();
    let output = command.output().await.expect("the rollcall binary runs");
    let took = started.elapsed();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "rollcall {args:?}: {printed}");
    (took, printed)
}

pub async fn wait_until_up(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while client.get(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `DATABASE_URL` of a scratch database.
pub fn database_url(target: &DatabaseTarget) -> String {
    match target {
        DatabaseTarget::Sqlite(path) => format!("sqlite://{path}"),
        DatabaseTarget::Postgres(url) => url.expose_secret().to_owned(),
    }
}

/// The `p` quantile of sorted durations, in milliseconds (NaN when there are none).
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// Calls `send(n)` for n = 0, 1, 2… at `rate` calls a second in all, spread over `senders` tasks, until
/// `seconds` have passed (a late call is made at once, to catch up); returns what the calls returned and
/// how long sending took.
pub async fn paced<T, F, Fut>(
    rate: u64,
    seconds: u64,
    senders: usize,
    send: F,
) -> (Vec<T>, Duration)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let period = Duration::from_secs_f64(senders as f64 / rate as f64);
    let mut tasks = Vec::new();
    for i in 0..senders {
        let (next, send) = (next.clone(), send.clone());
        let first = tokio::time::Instant::now() + period.mul_f64(i as f64 / senders as f64);
        tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(first, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut results = Vec::new();
            loop {
                ticks.tick().await;
                if Instant::now() >= deadline {
                    return results;
                }
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                results.push(send(n).await);
            }
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await.unwrap());
    }
    (results, started.elapsed())
}
