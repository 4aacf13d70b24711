//! Webhooks applied end to end. `rollcall serve` runs as its own process (the release build) and this
//! program sends it distinct signed events over HTTP, three `dsync.user.created` to one
//! `dsync.group.user_added` (of the user created just before, to one of ten groups), from 64 connections, as
//! a broker does in a burst. Per configuration (SQLite; PostgreSQL; PostgreSQL with two `serve` processes
//! sharing one schema, the senders alternating between them):
//!
//! 1. **Burst**: as fast as the senders go for BENCH_BURST_SECS (10), then until `/metrics` shows no
//!    delivery waiting (asked every 100 ms, so the time until all are applied is known to 0.1 s). Acknowledged events/s; applied events/s end to end (events sent ÷ the time from the
//!    first send until the last is applied); acknowledgement p50/p99; the backlog each second; and, from the
//!    stored rows (the server's clock), the time from receiving each delivery to applying it.
//! 2. **Steady**: BENCH_STEADY_RATE (2,000) events/s for BENCH_STEADY_SECS (60). Acknowledgement p99, the
//!    largest backlog, receipt to applied, and a probe every 200 ms timed by this program from sending a
//!    `dsync.user.created` to its member being visible through `GET …/members?email=`.
//!
//! `cargo bench --bench ingest` (env: BENCH_BURST_SECS, BENCH_STEADY_SECS, BENCH_STEADY_RATE,
//! BENCH_SENDERS, BENCH_CONFIGS: any of `sqlite`, `postgresql`, `postgresql-x2`, BENCH_POSTGRES_URL).
//! Under `cargo test --all-targets` it runs a short smoke pass instead, so it cannot rot.

mod support;

use diesel::prelude::*;
use reqwest::Method;
use rollcall::db::schema::webhook_events;
use rollcall::db::{Database, DbError};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    database_url, env_or, free_port, measuring, operator, paced, percentile_ms, runtime, scratch,
    sign_and_post, spawn, synced_workspace, wait_until_up, Process, OPERATOR, SECRET,
};

const ORGANIZATION: &str = "org_ingest";
const DIRECTORY: &str = "directory_ingest";
const GROUPS: u64 = 10;

/// One configuration measured.
struct Config {
    name: &'static str,
    backend: &'static str,
    instances: usize,
}

const CONFIGS: [Config; 3] = [
    Config {
        name: "sqlite",
        backend: "sqlite",
        instances: 1,
    },
    Config {
        name: "postgresql",
        backend: "postgresql",
        instances: 1,
    },
    Config {
        name: "postgresql-x2",
        backend: "postgresql",
        instances: 2,
    },
];

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn user(phase: &str, n: u64, at: &str) -> serde_json::Value {
    json!({
        "object": "directory_user", "id": format!("directory_user_{phase}_{n:09}"),
        "directory_id": DIRECTORY, "organization_id": ORGANIZATION, "idp_id": format!("idp-{phase}-{n}"),
        "email": format!("{phase}-{n}@bench.example"), "first_name": "Bench", "last_name": format!("Person {n}"),
        "state": "active", "custom_attributes": {"department": "Engineering"},
        "raw_attributes": {}, "created_at": at, "updated_at": at
    })
}

/// The `n`th event of a phase: every fourth adds the user created just before it to one of ten groups.
fn event_body(phase: &str, n: u64) -> Vec<u8> {
    let at = now_text();
    let (event_type, data) = if n % 4 == 3 {
        let group = n % GROUPS;
        let data = json!({
            "directory_id": DIRECTORY,
            "user": user(phase, n - 1, &at),
            "group": {
                "object": "directory_group", "id": format!("directory_group_bench_{group}"),
                "idp_id": format!("Group {group}"), "directory_id": DIRECTORY,
                "organization_id": ORGANIZATION, "name": format!("Group {group}"),
                "raw_attributes": {}, "created_at": "2026-01-01T00:00:00.000Z",
                "updated_at": "2026-01-01T00:00:00.000Z"
            }
        });
        ("dsync.group.user_added", data)
    } else {
        ("dsync.user.created", user(phase, n, &at))
    };
    json!({
        "object": "event", "id": format!("event_{phase}_{n:09}"), "event": event_type,
        "created_at": at, "data": data
    })
    .to_string()
    .into_bytes()
}

/// Posts one event signed now; returns how long its acknowledgement took, which must be a 200.
async fn send(client: &reqwest::Client, base: &str, body: Vec<u8>) -> Duration {
    let (status, took) = sign_and_post(client, base, body).await;
    assert_eq!(status, 200, "the webhook is acknowledged");
    took
}

/// The deliveries not applied yet, as `/metrics` reports them.
async fn waiting(client: &reqwest::Client, base: &str) -> i64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    rollcall::metrics::sample_value(&text, "rollcall_deliveries_waiting")
        .expect("/metrics reports the backlog") as i64
}

/// The service under test: one or two `serve` processes on one scratch database.
struct Service {
    bases: Vec<String>,
    db: Database,
    _processes: Vec<Process>,
    _scratch: support::Scratch,
}

fn start(config: &Config) -> Service {
    let scratch = scratch(config.backend);
    let url = database_url(&scratch.target);
    let mut bases = Vec::new();
    let mut processes = Vec::new();
    for _ in 0..config.instances {
        let port = free_port();
        bases.push(format!("http://127.0.0.1:{port}"));
        processes.push(spawn(
            &["serve"],
            &[
                ("DATABASE_URL", url.clone()),
                ("ROLLCALL_BIND", format!("127.0.0.1:{port}")),
                ("ROLLCALL_OPERATOR_TOKEN", OPERATOR.to_string()),
                ("WORKOS_WEBHOOK_SECRETS", SECRET.to_string()),
            ],
        ));
    }
    let db = Database::connect(scratch.target.clone(), 2).unwrap();
    Service {
        bases,
        db,
        _processes: processes,
        _scratch: scratch,
    }
}

/// The highest delivery id stored so far (0: none).
fn last_delivery(db: &Database) -> i64 {
    db.read(|c| {
        webhook_events::table
            .select(diesel::dsl::max(webhook_events::id))
            .first::<Option<i64>>(c)
            .map_err(DbError::from)
    })
    .unwrap()
    .unwrap_or(0)
}

/// For the deliveries after `after`, sorted: the time from receiving each to applying it (server clock).
fn receipt_to_applied(db: &Database, after: i64) -> Vec<Duration> {
    let rows: Vec<(
        rollcall::workos::timestamp::Timestamp,
        Option<rollcall::workos::timestamp::Timestamp>,
    )> = db
        .read(|c| {
            webhook_events::table
                .filter(webhook_events::id.gt(after))
                .select((webhook_events::received_at, webhook_events::processed_at))
                .load(c)
                .map_err(DbError::from)
        })
        .unwrap();
    let mut waited: Vec<Duration> = rows
        .into_iter()
        .map(|(received, processed)| {
            let processed = processed.expect("every delivery is applied");
            (processed - received).to_std().unwrap_or_default()
        })
        .collect();
    waited.sort();
    waited
}

/// What a burst measured.
struct Burst {
    sent: u64,
    send_time: Duration,
    all_applied: Duration,
    acks: Vec<Duration>,
    backlog: Vec<i64>,
    waited: Vec<Duration>,
}

async fn burst(service: &Service, seconds: u64, senders: usize) -> Burst {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .build()
        .unwrap();
    let before = last_delivery(&service.db);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (client, base, sampling) = (client.clone(), service.bases[0].clone(), sampling.clone());
        tokio::spawn(async move {
            let mut depths = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while sampling.load(Ordering::Relaxed) {
                tick.tick().await;
                depths.push(waiting(&client, &base).await);
            }
            depths
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (client, next, bases) = (client.clone(), next.clone(), service.bases.clone());
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let base = &bases[n as usize % bases.len()];
                acks.push(send(&client, base, event_body("burst", n)).await);
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for task in tasks {
        acks.extend(task.await.unwrap());
    }
    let send_time = started.elapsed();
    while waiting(&client, &service.bases[0]).await > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_applied = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let backlog = sampler.await.unwrap();
    let still_received = operator(
        &client,
        Method::GET,
        format!("{}/api/v1/events?status=received&limit=1", service.bases[0]),
        None,
        200,
    )
    .await;
    assert_eq!(
        still_received["data"],
        json!([]),
        "nothing is left received"
    );
    acks.sort();
    Burst {
        sent: acks.len() as u64,
        send_time,
        all_applied,
        acks,
        backlog,
        waited: receipt_to_applied(&service.db, before),
    }
}

/// What a steady load measured.
struct Steady {
    rate: f64,
    acks: Vec<Duration>,
    largest_backlog: i64,
    waited: Vec<Duration>,
    probes: Vec<Duration>,
}

/// Sends one `dsync.user.created` and waits until its member is visible through the API.
async fn probe(client: &reqwest::Client, base: &str, ws: &str, n: u64) -> Duration {
    let sent = Instant::now();
    send(client, base, event_body("probe", n * 4)).await;
    let url = format!(
        "{base}/api/v1/workspaces/{ws}/members?email=probe-{}@bench.example",
        n * 4
    );
    loop {
        let found = operator(client, Method::GET, url.clone(), None, 200).await;
        if found["data"].as_array().is_some_and(|d| !d.is_empty()) {
            return sent.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn steady(service: &Service, ws: &str, rate: u64, seconds: u64, senders: usize) -> Steady {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders + 2)
        .build()
        .unwrap();
    let before = last_delivery(&service.db);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let sending = {
        let (client, bases) = (client.clone(), service.bases.clone());
        tokio::spawn(paced(rate, seconds, senders, move |n| {
            let (client, bases) = (client.clone(), bases.clone());
            async move {
                let base = &bases[n as usize % bases.len()];
                send(&client, base, event_body("steady", n)).await
            }
        }))
    };
    let probes = {
        let (client, bases, ws) = (client.clone(), service.bases.clone(), ws.to_string());
        tokio::spawn(async move {
            let mut timings = Vec::new();
            let mut n = 0;
            while Instant::now() + Duration::from_millis(200) < deadline {
                let pause = tokio::time::sleep(Duration::from_millis(200));
                timings.push(probe(&client, &bases[n as usize % bases.len()], &ws, n).await);
                n += 1;
                pause.await;
            }
            timings
        })
    };
    let sampler = {
        let (client, base) = (client.clone(), service.bases[0].clone());
        tokio::spawn(async move {
            let mut largest = 0;
            while Instant::now() < deadline {
                largest = largest.max(waiting(&client, &base).await);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            largest
        })
    };
    let (mut acks, sending) = sending.await.unwrap();
    let mut probes = probes.await.unwrap();
    let largest_backlog = sampler.await.unwrap();
    while waiting(&client, &service.bases[0]).await > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acks.sort();
    probes.sort();
    Steady {
        rate: acks.len() as f64 / sending.as_secs_f64(),
        acks,
        largest_backlog,
        waited: receipt_to_applied(&service.db, before),
        probes,
    }
}

fn main() {
    let smoke = !measuring();
    let burst_secs = env_or("BENCH_BURST_SECS", if smoke { 1 } else { 10 }) as u64;
    let steady_secs = env_or("BENCH_STEADY_SECS", if smoke { 2 } else { 60 }) as u64;
    let steady_rate = env_or("BENCH_STEADY_RATE", if smoke { 200 } else { 2_000 }) as u64;
    let senders = env_or("BENCH_SENDERS", 64);
    let wanted = std::env::var("BENCH_CONFIGS").unwrap_or_else(|_| {
        if smoke {
            "sqlite,postgresql"
        } else {
            "sqlite,postgresql,postgresql-x2"
        }
        .into()
    });
    let runtime = runtime();
    println!("\nWebhooks applied end to end: `rollcall serve` as its own process, {senders} connections, three dsync.user.created to one dsync.group.user_added\n");
    let mut bursts = Vec::new();
    let mut steadies = Vec::new();
    let mut backlogs = Vec::new();
    for config in CONFIGS
        .iter()
        .filter(|c| wanted.split(',').any(|w| w.trim() == c.name))
    {
        let service = start(config);
        let (b, s) = runtime.block_on(async {
            let client = reqwest::Client::new();
            for base in &service.bases {
                wait_until_up(&client, &format!("{base}/healthz")).await;
            }
            let ws = synced_workspace(&client, &service.bases[0], ORGANIZATION).await;
            let b = burst(&service, burst_secs, senders).await;
            let s = steady(&service, &ws, steady_rate, steady_secs, senders).await;
            (b, s)
        });
        bursts.push(format!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | **{:.0}** | {:.1} s | {:.0} ms | {:.0} ms |",
            config.name,
            config.instances,
            b.sent,
            b.sent as f64 / b.send_time.as_secs_f64(),
            percentile_ms(&b.acks, 0.50),
            percentile_ms(&b.acks, 0.99),
            b.sent as f64 / b.all_applied.as_secs_f64(),
            b.all_applied.as_secs_f64(),
            percentile_ms(&b.waited, 0.50),
            percentile_ms(&b.waited, 0.99),
        ));
        backlogs.push(format!(
            "- {}: {}",
            config.name,
            b.backlog
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        steadies.push(format!(
            "| {} | {:.0} | {:.1} | {:.1} | {} | {:.0} / {:.0} / {:.0} ms | {} | {:.0} / {:.0} / {:.0} ms |",
            config.name,
            s.rate,
            percentile_ms(&s.acks, 0.50),
            percentile_ms(&s.acks, 0.99),
            s.largest_backlog,
            percentile_ms(&s.waited, 0.50),
            percentile_ms(&s.waited, 0.99),
            percentile_ms(&s.waited, 1.0),
            s.probes.len(),
            percentile_ms(&s.probes, 0.50),
            percentile_ms(&s.probes, 0.99),
            percentile_ms(&s.probes, 1.0),
        ));
    }
    println!(
        "Burst: {burst_secs} s as fast as the senders go, then until every event is applied\n"
    );
    println!("| config | instances | events sent | acknowledged/s | ack p50 ms | ack p99 ms | applied/s, end to end | all applied after | receipt to applied p50 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in bursts {
        println!("{row}");
    }
    println!("\nBacklog (deliveries waiting, from /metrics) each second from the first send:\n");
    for row in backlogs {
        println!("{row}");
    }
    println!("\nSteady: {steady_rate} events/s for {steady_secs} s\n");
    println!("| config | sent/s | ack p50 ms | ack p99 ms | largest backlog | receipt to applied p50 / p99 / max | probes | probe sent to visible p50 / p99 / max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in steadies {
        println!("{row}");
    }
}
