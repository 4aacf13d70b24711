//! Signed webhook ingestion through real HTTP: many concurrent senders, distinct events, each durable
//! before its 200. Prints events/s and acknowledgement latency per backend, beside the rate at which the same
//! rows go straight into the same database with the same durability (the ceiling).
//!
//! `cargo bench --bench ingest` (env: BENCH_EVENTS, BENCH_SENDERS, BENCH_POSTGRES_URL, BENCH_BACKENDS).
//! Under `cargo test --all-targets` it runs a small smoke pass instead, so it cannot rot.

mod support;

use rollcall::db::models::NewWebhookEvent;
use rollcall::db::{Database, DatabaseTarget};
use rollcall::intake::event_store::insert_batch;
use rollcall::workos::timestamp;
use serde_json::json;
use std::time::Instant;
use support::{
    backends, deliver_all, env_or, measuring, runtime, scratch, start_service, synced_workspace,
    Delivery,
};

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

async fn ingest(target: DatabaseTarget, count: usize, senders: usize) -> Delivery {
    let (base, db) = start_service(target);
    let client = reqwest::Client::new();
    synced_workspace(&client, &base, "org_bench").await;
    deliver_all(
        &base,
        &db,
        events(count, "org_bench", "directory_bench"),
        senders,
    )
    .await
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
    let count = env_or("BENCH_EVENTS", if measuring() { 20_000 } else { 300 });
    let senders = env_or("BENCH_SENDERS", 64);
    let runtime = runtime();
    println!("signed webhook ingestion over HTTP: {count} distinct dsync.user.created events, {senders} concurrent senders");
    println!();
    println!("| backend | events/s | p50 ack ms | p99 ack ms | applied/s (end to end) | ceiling, 1 row/commit | ceiling, 500 rows/commit |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for backend in backends() {
        let figures = {
            let db = scratch(&backend);
            runtime.block_on(ingest(db.target.clone(), count, senders))
        };
        let single = ceiling(scratch(&backend).target.clone(), (count / 10).max(500), 1);
        let batched = ceiling(scratch(&backend).target.clone(), count, 500);
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
