//! An attribute storm: a change of an attribute mapping at the broker sends one `dsync.user.updated` per
//! affected user. The service runs in this process on each backend; BENCH_USERS (100,000) users are
//! provisioned by `dsync.user.created`, then each gets one `dsync.user.updated` that changes one custom
//! attribute (`department`), posted from BENCH_SENDERS (64) connections as fast as they go. Measured: the
//! acknowledgements, and the time from the first update sent until none waits for the applier (read from
//! the database every 20 ms); then 20 members picked across the workspace are read through the API, which
//! must show the new attribute.
//!
//! `cargo bench --bench attributes` (env: BENCH_USERS, BENCH_SENDERS, BENCH_BACKENDS, BENCH_POSTGRES_URL).
//! Under `cargo test --all-targets` it runs a short smoke pass instead.

mod support;

use reqwest::Method;
use serde_json::json;
use support::{
    backends, deliver_all, env_or, measuring, operator, runtime, scratch, start_service,
    synced_workspace, Delivery,
};

const ORG: &str = "org_attribute_storm";
const DIRECTORY: &str = "directory_attribute_storm";

/// A user's event: created, or updated with another department and a later `updated_at`.
fn user_event(i: usize, updated: bool) -> Vec<u8> {
    let (kind, at, department) = if updated {
        ("dsync.user.updated", "2026-02-01T00:00:00.000Z", "Platform")
    } else {
        (
            "dsync.user.created",
            "2026-01-01T00:00:00.000Z",
            "Engineering",
        )
    };
    json!({
        "object": "event", "id": format!("event_storm_{}_{i:07}", if updated { "u" } else { "c" }),
        "event": kind, "created_at": at,
        "data": {
            "object": "directory_user", "id": format!("directory_user_storm_{i:07}"),
            "directory_id": DIRECTORY, "organization_id": ORG, "idp_id": format!("idp-{i}"),
            "email": format!("person-{i}@storm.example"), "first_name": "Storm", "last_name": format!("{i}"),
            "state": "active", "raw_attributes": {},
            "custom_attributes": {"department": department, "employee_number": format!("{i}")},
            "role": {"slug": "member"}, "roles": [{"slug": "member"}],
            "created_at": "2026-01-01T00:00:00.000Z", "updated_at": at
        }
    })
    .to_string()
    .into_bytes()
}

fn main() {
    let users = env_or("BENCH_USERS", if measuring() { 100_000 } else { 300 });
    let senders = env_or("BENCH_SENDERS", 64);
    let runtime = runtime();
    let mut rows = Vec::new();
    for backend in backends() {
        let scratch = scratch(&backend);
        let (created, storm) = runtime.block_on(async {
            let service = start_service(scratch.target.clone());
            let (base, db) = (service.base.clone(), service.db.clone());
            let client = reqwest::Client::new();
            let ws = synced_workspace(&client, &base, ORG).await;
            let bodies = (0..users).map(|i| user_event(i, false)).collect();
            let created = deliver_all(&base, &db, bodies, senders).await;
            let bodies = (0..users).map(|i| user_event(i, true)).collect();
            let storm = deliver_all(&base, &db, bodies, senders).await;
            for k in 0..20 {
                let i = k * users / 20;
                let found = operator(
                    &client,
                    Method::GET,
                    format!("{base}/api/v1/workspaces/{ws}/members?email=person-{i}@storm.example"),
                    None,
                    200,
                )
                .await;
                let member = &found["data"][0];
                assert_eq!(
                    member["attributes"]["department"], "Platform",
                    "user {i} shows the new attribute: {member}"
                );
            }
            service.stop().await;
            (created, storm)
        });
        let row = |what: &str, d: &Delivery| {
            format!(
                "| {backend} | {what} | {users} | {:.0} | {:.1} | {:.1} | **{:.0}** | {:.1} s |",
                d.events_per_s,
                d.p50_ms,
                d.p99_ms,
                d.applied_per_s,
                users as f64 / d.applied_per_s
            )
        };
        rows.push(row("provisioned (dsync.user.created)", &created));
        rows.push(row("attribute storm (dsync.user.updated)", &storm));
    }
    println!(
        "\nAttribute storm: {users} users, one attribute changed each, {senders} connections\n"
    );
    println!("| backend | events | count | acknowledged/s | ack p50 ms | ack p99 ms | applied/s, end to end | all applied after |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
}
