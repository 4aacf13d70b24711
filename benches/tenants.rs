//! One workspace's trouble is not everyone's (SPEC rule 18): what another workspace sees while one is busy.
//! `rollcall serve` runs as its own process (the release build), the broker's stand-in as another, and
//! this program sends, probes and times from a third, all on the same machine.
//!
//! 1. **Broker down.** The broker's API accepts connections and never answers. 24 workspaces have
//!    directory sync on (each asked the broker for its directories) and their 24 directories are activated
//!    by webhook at once (each activation starts a pull, which waits for the broker); meanwhile another
//!    workspace receives 20 webhooks a second for 12 s. Every acknowledgement's status and time.
//! 2. **A big pull next door.** Workspace A's first pull of a dev-broker directory of 100,000 users (no rate
//!    limit) runs; every 100 ms a probe creates one user of workspace B by webhook and polls
//!    `GET …/members?email=` until it shows: sent → visible through the API. The same probe with nothing
//!    else running first.
//! 3. **Previews next door.** Workspace A has 20,000 members and 20 groups mapped to roles; three loops
//!    preview other role mappings of A back to back, while workspace B receives 20 webhooks a second for
//!    12 s: B's acknowledgement times, and the same with no preview running first.
//!
//! `cargo bench --bench tenants` (env: BENCH_BACKENDS, BENCH_POSTGRES_URL, BENCH_PULL_USERS (100,000),
//! BENCH_PREVIEW_MEMBERS (20,000), BENCH_SCENARIOS: any of `broker-down`, `pull`, `previews`). Under
//! `cargo test --all-targets` it runs a short smoke pass instead, so it cannot rot.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    backends, database_url, dev_broker, directory_group_ids, env_or, free_port, measuring,
    operator, percentile_ms, pull, runtime, scratch, sign_and_post, spawn, synced_workspace,
    wait_until_up, Process, OPERATOR, SECRET,
};

const API_KEY: &str = "sk_test_bench";

/// A service process and the address it answers on.
struct Service {
    base: String,
    _process: Process,
}

/// Starts `rollcall serve` on a scratch database with these settings besides the bench's own.
async fn serve(
    client: &reqwest::Client,
    url: &str,
    broker: &str,
    extra: &[(&str, &str)],
) -> Service {
    let port = free_port();
    let mut env: Vec<(&str, String)> = vec![
        ("DATABASE_URL", url.to_string()),
        ("ROLLCALL_BIND", format!("127.0.0.1:{port}")),
        ("ROLLCALL_OPERATOR_TOKEN", OPERATOR.to_string()),
        ("WORKOS_WEBHOOK_SECRETS", SECRET.to_string()),
        ("WORKOS_API_KEY", API_KEY.to_string()),
        ("WORKOS_API_BASE", broker.to_string()),
        ("WORKOS_USER_LISTING_RATE", "0".to_string()),
        ("RESYNC_INTERVAL", "0".to_string()),
        ("ROLLCALL_EVENT_SOURCE", "webhooks".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let process = spawn(&["serve"], &env);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(client, &format!("{base}/healthz")).await;
    Service {
        base,
        _process: process,
    }
}

/// A dev broker of `users` users in `groups` groups, three memberships each; returns it and its base URL.
async fn broker_up(client: &reqwest::Client, users: usize, groups: usize) -> (Process, String) {
    let (process, base) = dev_broker(users, groups, API_KEY);
    wait_until_up(client, &format!("{base}/_dev/state")).await;
    (process, base)
}

/// A signed event of `kind` for `data`, as the broker sends it.
fn event(kind: &str, data: Value) -> Vec<u8> {
    json!({
        "id": format!("event_{}", ulid::Ulid::new()), "event": kind,
        "created_at": "2026-03-02T10:00:00.000Z", "data": data,
    })
    .to_string()
    .into_bytes()
}

fn directory(id: &str, organization: &str) -> Value {
    json!({"object": "directory", "id": id, "organization_id": organization, "type": "okta scim v2.0",
        "state": "active", "name": id, "created_at": "2026-03-02T10:00:00.000Z",
        "updated_at": "2026-03-02T10:00:00.000Z"})
}

fn user(id: &str, directory: &str, organization: &str, email: &str) -> Value {
    json!({"object": "directory_user", "id": id, "directory_id": directory, "organization_id": organization,
        "idp_id": id, "email": email, "first_name": "Probe", "last_name": "User", "state": "active",
        "custom_attributes": {}, "raw_attributes": {},
        "created_at": "2026-03-02T10:00:00.000Z", "updated_at": "2026-03-02T10:00:00.000Z"})
}

/// Webhooks creating users of one workspace at `rate` a second for `secs`, each sent on time whatever
/// the answers before it; returns each one's status and acknowledgement time.
async fn stream(
    client: &reqwest::Client,
    base: &str,
    (directory_id, organization): (&str, &str),
    rate: u32,
    secs: f64,
) -> Vec<(u16, Duration)> {
    let count = (rate as f64 * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = tokio::time::Instant::now();
    let mut sends = Vec::with_capacity(count);
    for i in 0..count {
        tokio::time::sleep_until(started + interval * i as u32).await;
        let id = format!("directory_user_stream_{}", ulid::Ulid::new());
        let email = format!("{}@stream.example", id.to_lowercase());
        let body = event(
            "dsync.user.created",
            user(&id, directory_id, organization, &email),
        );
        let (client, base) = (client.clone(), base.to_string());
        sends.push(tokio::spawn(async move {
            sign_and_post(&client, &base, body).await
        }));
    }
    let mut answers = Vec::with_capacity(count);
    for send in sends {
        answers.push(send.await.unwrap());
    }
    answers
}

/// p50, p99 and max of durations, in ms.
fn spread(mut times: Vec<Duration>) -> (f64, f64, f64) {
    times.sort();
    (
        percentile_ms(&times, 0.50),
        percentile_ms(&times, 0.99),
        percentile_ms(&times, 1.0),
    )
}

/// A workspace with directory sync on and its directory activated; returns its id.
async fn activated(
    client: &reqwest::Client,
    base: &str,
    directory_id: &str,
    organization: &str,
) -> String {
    let ws = synced_workspace(client, base, organization).await;
    let (status, _) = sign_and_post(
        client,
        base,
        event("dsync.activated", directory(directory_id, organization)),
    )
    .await;
    assert_eq!(status, 200);
    ws
}

/// Scenario 1: the broker's API silent, directories activating, webhooks of another workspace.
async fn broker_down(url: &str, directories: usize, secs: f64) -> Vec<String> {
    let client = reqwest::Client::new();
    // Connections are accepted by the system into the backlog and never read: every request hangs.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let broker = format!("http://{}", silent.local_addr().unwrap());
    let service = serve(&client, url, &broker, &[]).await;
    let base = service.base.clone();
    for i in 0..directories {
        synced_workspace(&client, &base, &format!("org_down_{i}")).await;
    }
    activated(&client, &base, "directory_steady", "org_steady").await;
    let activations = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let posts = (0..directories).map(|i| {
                let body = event(
                    "dsync.activated",
                    directory(&format!("directory_down_{i}"), &format!("org_down_{i}")),
                );
                sign_and_post(&client, &base, body)
            });
            futures_util::future::join_all(posts).await
        })
    };
    let answers = stream(&client, &base, ("directory_steady", "org_steady"), 20, secs).await;
    let activations = activations.await.unwrap();
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str| rollcall::metrics::sample_value(&metrics, name).unwrap_or(f64::NAN);
    let refused = answers
        .iter()
        .chain(&activations)
        .filter(|(s, _)| *s != 200)
        .count();
    let (p50, p99, max) = spread(answers.iter().map(|(_, t)| *t).collect());
    let (_, _, activation_max) = spread(activations.iter().map(|(_, t)| *t).collect());
    vec![format!(
        "| {} | {} | {refused} | {p50:.1} | {p99:.1} | {max:.1} | {activation_max:.1} | {} / {} |",
        answers.len(),
        activations.len(),
        gauge("rollcall_sync_runs_running"),
        gauge("rollcall_sync_runs_queued"),
    )]
}

/// One probe: a new user of workspace B by webhook, then `GET …/members?email=` every 5 ms until it shows;
/// returns sent → visible.
async fn probe(client: &reqwest::Client, base: &str, ws: &str) -> Duration {
    let id = format!("directory_user_probe_{}", ulid::Ulid::new());
    let email = format!("{}@probe.example", id.to_lowercase());
    let body = event(
        "dsync.user.created",
        user(&id, "directory_probe", "org_probe", &email),
    );
    let sent = Instant::now();
    let (status, _) = sign_and_post(client, base, body).await;
    assert_eq!(status, 200);
    let url = format!("{base}/api/v1/workspaces/{ws}/members?email={email}");
    loop {
        let listed: Value = client
            .get(&url)
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if listed["data"].as_array().is_some_and(|d| !d.is_empty()) {
            return sent.elapsed();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(60),
            "the probe never showed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Probes every 100 ms (or right after the last, if it took longer) until `done`, or `count` of them.
async fn probes(
    client: &reqwest::Client,
    base: &str,
    ws: &str,
    done: Arc<AtomicBool>,
    count: usize,
) -> Vec<Duration> {
    let mut seen = Vec::new();
    while !done.load(Ordering::Relaxed) && seen.len() < count {
        let started = Instant::now();
        seen.push(probe(client, base, ws).await);
        if let Some(rest) = Duration::from_millis(100).checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    seen
}

/// Scenario 2: A's first pull of a big directory, and B's probes.
async fn pull_next_door(url: &str, users: usize, quiet_probes: usize) -> Vec<String> {
    let client = reqwest::Client::new();
    let (_broker, broker) = broker_up(&client, users, (users / 100).max(10)).await;
    let service = serve(
        &client,
        url,
        &broker,
        &[("ROLLCALL_PULL_ON_ACTIVATION", "false")],
    )
    .await;
    let base = service.base.clone();
    synced_workspace(&client, &base, "org_dev").await;
    let ws_b = activated(&client, &base, "directory_probe", "org_probe").await;
    let never = Arc::new(AtomicBool::new(false));
    let quiet = probes(&client, &base, &ws_b, never, quiet_probes).await;
    let done = Arc::new(AtomicBool::new(false));
    let pulling = {
        let (client, base, done) = (client.clone(), base.clone(), done.clone());
        tokio::spawn(async move {
            let (_, took) = pull(&client, &base, "directory_dev").await;
            done.store(true, Ordering::Relaxed);
            took
        })
    };
    let busy = probes(&client, &base, &ws_b, done, usize::MAX).await;
    let took = pulling.await.unwrap();
    let row = |label: &str, times: Vec<Duration>| {
        let n = times.len();
        let (p50, p99, max) = spread(times);
        format!("| {label} | {n} | {p50:.0} | {p99:.0} | {max:.0} |")
    };
    vec![
        row("nothing else running", quiet),
        row(
            &format!(
                "during A's first pull of {users} users ({:.1} s)",
                took.as_secs_f64()
            ),
            busy,
        ),
    ]
}

/// Scenario 3: three loops of role-mapping previews of a big workspace, and another's webhooks.
async fn previews_next_door(url: &str, members: usize, secs: f64) -> Vec<String> {
    let client = reqwest::Client::new();
    let groups = 100.min(members / 10).max(20);
    let (_broker, broker) = broker_up(&client, members, groups).await;
    let service = serve(
        &client,
        url,
        &broker,
        &[("ROLLCALL_PULL_ON_ACTIVATION", "false")],
    )
    .await;
    let base = service.base.clone();
    let ws_a = synced_workspace(&client, &base, "org_dev").await;
    pull(&client, &base, "directory_dev").await;
    let mapped = directory_group_ids(&client, &base, &ws_a, 20).await;
    let roles = ["admin", "builder", "viewer"];
    // Mapped now: the groups' roles in turn. Previewed: every group to one role, a different one per loop,
    // so each preview moves many members.
    let mappings = |role_of: &dyn Fn(usize) -> &'static str| -> Value {
        Value::Array(
            mapped
                .iter()
                .enumerate()
                .map(|(i, g)| json!({"group_id": g, "role": role_of(i)}))
                .collect(),
        )
    };
    operator(
        &client,
        Method::PUT,
        format!("{base}/api/v1/workspaces/{ws_a}/role-mappings"),
        Some(mappings(&|i| roles[i % 3])),
        200,
    )
    .await;
    activated(&client, &base, "directory_steady", "org_steady").await;

    let quiet = stream(
        &client,
        &base,
        ("directory_steady", "org_steady"),
        20,
        secs / 2.0,
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let previewed = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = roles
        .iter()
        .map(|role| {
            let (client, url, body) = (
                client.clone(),
                format!("{base}/api/v1/workspaces/{ws_a}/role-mappings/preview"),
                mappings(&|_| role),
            );
            let (stop, previewed) = (stop.clone(), previewed.clone());
            tokio::spawn(async move {
                let mut times = Vec::new();
                let mut moved = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let answer: Value = client
                        .post(&url)
                        .bearer_auth(OPERATOR)
                        .json(&body)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    times.push(started.elapsed());
                    moved = answer["total"].as_u64().unwrap_or(0);
                    previewed.fetch_add(1, Ordering::Relaxed);
                }
                (times, moved)
            })
        })
        .collect();
    let busy = stream(&client, &base, ("directory_steady", "org_steady"), 20, secs).await;
    stop.store(true, Ordering::Relaxed);
    let mut preview_times = Vec::new();
    let mut moved = Vec::new();
    for task in loops {
        let (times, m) = task.await.unwrap();
        preview_times.extend(times);
        moved.push(m.to_string());
    }
    // One replacement of A's mappings (every group to viewer), while B's webhooks go on.
    let streaming = {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            stream(
                &client,
                &base,
                ("directory_steady", "org_steady"),
                20,
                secs / 2.0,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let replacing = Instant::now();
    operator(
        &client,
        Method::PUT,
        format!("{base}/api/v1/workspaces/{ws_a}/role-mappings"),
        Some(mappings(&|_| "viewer")),
        200,
    )
    .await;
    let replaced = replacing.elapsed();
    let during_put = streaming.await.unwrap();
    let members_of_a = operator(
        &client,
        Method::GET,
        format!("{base}/api/v1/workspaces/{ws_a}/members?limit=1"),
        None,
        200,
    )
    .await;
    assert!(members_of_a["data"]
        .as_array()
        .is_some_and(|d| !d.is_empty()));
    let (preview_p50, _, _) = spread(preview_times);
    let row = |label: String, answers: Vec<(u16, Duration)>| {
        let refused = answers.iter().filter(|(s, _)| *s != 200).count();
        let n = answers.len();
        let (p50, p99, max) = spread(answers.into_iter().map(|(_, t)| t).collect());
        format!("| {label} | {n} | {refused} | {p50:.1} | {p99:.1} | {max:.1} |")
    };
    vec![
        row("no preview running".into(), quiet),
        row(
            format!(
                "one replacement of A's mappings ({:.0} ms)",
                replaced.as_secs_f64() * 1000.0
            ),
            during_put,
        ),
        row(
            format!(
                "3 preview loops ({} previews, p50 {preview_p50:.0} ms, moving {} members)",
                previewed.load(Ordering::Relaxed),
                moved.join(" / ")
            ),
            busy,
        ),
    ]
}

fn main() {
    let full = measuring();
    let scenarios =
        std::env::var("BENCH_SCENARIOS").unwrap_or_else(|_| "broker-down,pull,previews".into());
    let (directories, secs, pull_users, quiet_probes, preview_members) = if full {
        (
            24,
            12.0,
            env_or("BENCH_PULL_USERS", 100_000),
            100,
            env_or("BENCH_PREVIEW_MEMBERS", 20_000),
        )
    } else {
        (4, 1.0, 300, 5, 300)
    };
    let rt = runtime();
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for backend in backends() {
        let mut measured = |title: String, header: &str, rows: Vec<String>| {
            let table = tables.iter_mut().find(|(t, _)| *t == title);
            let rows = rows
                .into_iter()
                .map(|r| r.replacen("| ", &format!("| {backend} | "), 1));
            match table {
                Some((_, lines)) => lines.extend(rows),
                None => tables.push((
                    title,
                    std::iter::once(header.to_string()).chain(rows).collect(),
                )),
            }
        };
        if scenarios.contains("broker-down") {
            let db = scratch(&backend);
            let rows = rt.block_on(broker_down(&database_url(&db.target), directories, secs));
            measured(
                format!("Broker down: {directories} directories activating, 20 webhooks/s of another workspace for {secs} s"),
                "| backend | webhooks | activations | not 200 | ack p50 ms | ack p99 ms | ack max ms | activation ack max ms | pulls running / queued after |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|",
                rows,
            );
        }
        if scenarios.contains("pull") {
            let db = scratch(&backend);
            let rows = rt.block_on(pull_next_door(
                &database_url(&db.target),
                pull_users,
                quiet_probes,
            ));
            measured(
                "Workspace B's probe (webhook sent → member visible through the API), every 100 ms".into(),
                "| backend | while | probes | p50 ms | p99 ms | max ms |\n|---|---|---:|---:|---:|---:|",
                rows,
            );
        }
        if scenarios.contains("previews") {
            let db = scratch(&backend);
            let rows = rt.block_on(previews_next_door(
                &database_url(&db.target),
                preview_members,
                secs,
            ));
            measured(
                format!("Another workspace's webhook acks (20/s) while three loops preview role mappings of a {preview_members}-member workspace"),
                "| backend | while | webhooks | not 200 | ack p50 ms | ack p99 ms | ack max ms |\n|---|---|---:|---:|---:|---:|---:|",
                rows,
            );
        }
    }
    for (title, lines) in tables {
        println!("\n{title}\n");
        for line in lines {
            println!("{line}");
        }
    }
}
