//! Signed webhook ingestion through real HTTP: many concurrent senders, distinct events, each durable
//! before its 200. Prints events/s and acknowledgement latency per backend, beside the rate at which the same
//! rows go straight into the same database with the same durability (the ceiling).
//!
//! `cargo bench --bench ingest` (env: BENCH_EVENTS, BENCH_SENDERS, BENCH_POSTGRES_URL, BENCH_BACKENDS).
//! Under `cargo test --all-targets` it runs a small smoke pass instead, so it cannot rot.

use diesel::connection::SimpleConnection;
use diesel::Connection;
use rollcall::config::Settings;
use rollcall::db::models::NewWebhookEvent;
use rollcall::db::{Database, DatabaseTarget};
use rollcall::intake::event_store::insert_batch;
use rollcall::startup::Application;
use rollcall::workos::signature;
use rollcall::workos::timestamp;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret";
const OPERATOR: &str = "bench-operator";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Scratch {
    target: DatabaseTarget,
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

fn scratch(backend: &str) -> Scratch {
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
            target: DatabaseTarget::Postgres(format!("{url}{sep}options=-csearch_path%3D{schema}")),
            _dir: None,
            drop_schema: Some((url, schema)),
        }
    }
}

/// Distinct `dsync.user.created` events for one qualifying workspace.
fn events(count: usize, organization: &str, directory: &str) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            json!({
                "object": "event", "id": format!("event_bench_{i:08}"), "event": "dsync.user.created",
                "created_at": "2026-03-02T10:00:00.000Z",
                "data": {
                    "object": "directory_user", "id": format!("directory_user_bench_{i:08}"),
                    "directory_id": directory, "organization_id": organization, "idp_id": format!("idp-{i}"),
                    "email": format!("person{i}@bench.example"), "first_name": "Bench", "last_name": format!("Person {i}"),
                    "state": "active", "custom_attributes": {"department": "Engineering"},
                    "raw_attributes": {}, "created_at": "2026-03-02T10:00:00.000Z", "updated_at": "2026-03-02T10:00:00.000Z"
                }
            })
            .to_string()
            .into_bytes()
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

struct Figures {
    events_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    applied_per_s: f64,
}

async fn ingest(target: DatabaseTarget, count: usize, senders: usize) -> Figures {
    let mut settings = Settings::from_lookup(|_| None).unwrap();
    settings.database = target;
    settings.bind = "127.0.0.1:0".parse().unwrap();
    settings.webhook_secrets = vec![SECRET.into()];
    settings.operator_token = Some(OPERATOR.into());
    settings.db_pool_size = 16;
    let app = Application::build(settings).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let db = app.database().clone();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .build()
        .unwrap();
    let ws: serde_json::Value = client
        .post(format!("{base}/api/v1/workspaces"))
        .bearer_auth(OPERATOR)
        .json(&json!({"name": "Bench", "plan": "enterprise", "organization_id": "org_bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ws = ws["id"].as_str().unwrap().to_string();
    client
        .put(format!("{base}/api/v1/workspaces/{ws}/directory-sync"))
        .bearer_auth(OPERATOR)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();

    let now = signature::now_ms();
    let signed: Vec<(Vec<u8>, String)> = events(count, "org_bench", "directory_bench")
        .into_iter()
        .map(|body| {
            let header = signature::sign(SECRET, now, &body);
            (body, header)
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(signed));
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
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("WorkOS-Signature", header)
                    .body(body)
                    .send()
                    .await
                    .expect("the webhook is sent");
                assert_eq!(response.status(), 200);
                latencies.push(sent.elapsed());
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
    // Then wait for the applier to finish, for the applied rate.
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
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let applied_elapsed = started.elapsed();
    Figures {
        events_per_s: count as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        applied_per_s: count as f64 / applied_elapsed.as_secs_f64(),
    }
}

/// Rows/s inserting the same rows straight into the database, `per_commit` rows per durable commit.
fn ceiling(target: DatabaseTarget, count: usize, per_commit: usize) -> f64 {
    let db = Database::connect(target, 4).unwrap();
    db.migrate().unwrap();
    let bodies = events(count, "org_ceiling", "directory_ceiling");
    let rows: Vec<NewWebhookEvent> = bodies
        .into_iter()
        .map(|body| {
            let event = rollcall::workos::events::Event::parse(&body).unwrap();
            NewWebhookEvent::received(&event, body, timestamp::now())
        })
        .collect();
    let started = Instant::now();
    for chunk in rows.chunks(per_commit) {
        insert_batch(&db, chunk).unwrap();
    }
    count as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not, and gets a quick smoke run.
    let measuring = std::env::args().any(|a| a == "--bench");
    let count = env_or("BENCH_EVENTS", if measuring { 20_000 } else { 300 });
    let senders = env_or("BENCH_SENDERS", 64);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgresql".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("signed webhook ingestion over HTTP: {count} distinct dsync.user.created events, {senders} concurrent senders");
    println!();
    println!("| backend | events/s | p50 ack ms | p99 ack ms | applied/s (end to end) | ceiling, 1 row/commit | ceiling, 500 rows/commit |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for backend in backends.split(',').map(str::trim) {
        let figures = {
            let db = scratch(backend);
            runtime.block_on(ingest(db.target.clone(), count, senders))
        };
        let single = ceiling(scratch(backend).target.clone(), (count / 10).max(500), 1);
        let batched = ceiling(scratch(backend).target.clone(), count, 500);
        println!(
            "| {backend} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} |",
            figures.events_per_s,
            figures.p50_ms,
            figures.p99_ms,
            figures.applied_per_s,
            single,
            batched
        );
    }
}
