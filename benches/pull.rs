//! The full pull at scale: `rollcall serve` pulls a `rollcall dev-broker` directory (100,000 users, 1,000 groups,
//! about 300,000 memberships by default) with no rate limit, twice: the first pull brings everything in, the
//! second finds nothing changed. Both run as separate processes, so the peak memory is the service's own.
//!
//! A third pull, after linking BENCH_LINKED_GROUPS groups to teams and mapping two to roles, shows what
//! checking every user's teams and roles costs.
//!
//! `cargo bench --bench pull` (env: BENCH_USERS, BENCH_GROUPS, BENCH_LINKED_GROUPS, BENCH_BACKENDS).

mod support;

use diesel::prelude::*;
use reqwest::Method;
use rollcall::db::{Database, DbError};
use rollcall::workos::signature;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{
    backends, database_url, dev_broker, env_or, free_port, link_teams_and_roles, measuring,
    operator, percentile_ms, post_signed, pull, runtime, scratch, spawn, synced_workspace,
    wait_until_up, OPERATOR, SECRET,
};

const API_KEY: &str = "sk_test_bench";
const DIRECTORY: &str = "directory_dev";
const ORGANIZATION: &str = "org_dev";

/// Rows in the tables a pull writes, and the newest change among them: equal before and after a pull that
/// wrote nothing.
fn footprint(db: &Database) -> Vec<(i64, Option<String>)> {
    let tables = [
        ("directory_users", "updated_at"),
        ("directory_groups", "updated_at"),
        ("directory_group_memberships", "updated_at"),
        ("members", "updated_at"),
        ("team_member_sources", "created_at"),
        ("audit_log", "occurred_at"),
    ];
    db.read(|conn| {
        let mut out = Vec::new();
        for (table, column) in tables {
            #[derive(QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
                #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
                newest: Option<String>,
            }
            let query =
                format!("SELECT COUNT(*) AS n, CAST(MAX({column}) AS TEXT) AS newest FROM {table}");
            let row: Row =
                rollcall::on_backend!(conn, |c| diesel::sql_query(&query).get_result(c))?;
            out.push((row.n, row.newest));
        }
        Ok::<_, DbError>(out)
    })
    .unwrap()
}

struct Figures {
    backend: String,
    memberships: u64,
    requests: u64,
    first: Duration,
    second: Duration,
    peak: f64,
    /// The peak over the third pull too.
    peak_linked: f64,
    rows_written: usize,
    /// A pull with nothing changed once `linked` groups feed teams and two map to roles.
    third: Duration,
    third_changed: usize,
    acks: usize,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    ack_max_ms: f64,
}

/// Signed webhooks, one every 20 ms, while a pull runs: each one's acknowledgement time. They name an
/// organization no workspace has, so they are stored (durably, before the 200) and then skipped.
async fn webhooks_during(
    client: reqwest::Client,
    base: String,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let mut acks = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = serde_json::json!({
            "id": format!("event_during_pull_{n}"), "event": "dsync.user.created",
            "created_at": "2026-03-02T10:00:00.000Z",
            "data": {"object": "directory_user", "id": format!("directory_user_elsewhere_{n}"),
                "directory_id": "directory_elsewhere", "organization_id": "org_elsewhere",
                "email": format!("p{n}@elsewhere.example"), "state": "active",
                "created_at": "2026-03-02T10:00:00.000Z", "updated_at": "2026-03-02T10:00:00.000Z"}
        })
        .to_string();
        let header = signature::sign(SECRET, signature::now_ms(), body.as_bytes());
        let url = format!("{base}/webhooks/workos");
        acks.push(post_signed(&client, &url, body.into_bytes(), header).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    acks
}

/// How many tables a pull changed, from their footprints before and after.
fn changed(before: &[(i64, Option<String>)], after: &[(i64, Option<String>)]) -> usize {
    before.iter().zip(after).filter(|(b, a)| b != a).count()
}

/// The one workspace's id.
async fn workspace_of(client: &reqwest::Client, base: &str) -> String {
    let list = operator(
        client,
        Method::GET,
        format!("{base}/api/v1/workspaces"),
        None,
        200,
    )
    .await;
    list["data"][0]["id"].as_str().unwrap().to_string()
}

fn measure(backend: &str, users: usize, groups: usize, linked: usize) -> Figures {
    let db_scratch = scratch(backend);
    let database_url = database_url(&db_scratch.target);
    let (_broker, broker_base) = dev_broker(users, groups, API_KEY);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let service = spawn(
        &["serve"],
        &[
            ("DATABASE_URL", database_url),
            ("ROLLCALL_BIND", format!("127.0.0.1:{port}")),
            ("ROLLCALL_OPERATOR_TOKEN", OPERATOR.to_string()),
            ("WORKOS_API_KEY", API_KEY.to_string()),
            ("WORKOS_API_BASE", broker_base.clone()),
            ("WORKOS_USER_LISTING_RATE", "0".to_string()),
            ("RESYNC_INTERVAL", "0".to_string()),
            ("WORKOS_WEBHOOK_SECRETS", SECRET.to_string()),
        ],
    );
    let rt = runtime();
    let client = reqwest::Client::new();
    let (first, first_run, second, second_run, changed, acks, third, peaks) = rt.block_on(async {
        wait_until_up(&client, &format!("{broker_base}/_dev/state")).await;
        wait_until_up(&client, &format!("{base}/healthz")).await;
        synced_workspace(&client, &base, ORGANIZATION).await;
        let stop = Arc::new(AtomicBool::new(false));
        let webhooks = tokio::spawn(webhooks_during(client.clone(), base.clone(), stop.clone()));
        let (first_run, first) = pull(&client, &base, DIRECTORY).await;
        stop.store(true, Ordering::Relaxed);
        let mut acks = webhooks.await.unwrap();
        acks.sort();
        let db = Database::connect(db_scratch.target.clone(), 2).unwrap();
        let before = footprint(&db);
        let (second_run, second) = pull(&client, &base, DIRECTORY).await;
        let after = footprint(&db);
        let second_changed = changed(&before, &after);
        let peak_two_pulls = service.peak_mib();
        // Teams and roles from groups: then every pull checks every user's.
        let ws = workspace_of(&client, &base).await;
        link_teams_and_roles(&client, &base, &ws, linked).await;
        let before = footprint(&db);
        let (_, third) = pull(&client, &base, DIRECTORY).await;
        let third_changed = changed(&before, &footprint(&db));
        let changed = (second_changed, third_changed);
        let peaks = (peak_two_pulls, service.peak_mib());
        (
            first, first_run, second, second_run, changed, acks, third, peaks,
        )
    });
    let counts = &first_run["counts"];
    assert_eq!(
        counts["users_created"].as_u64(),
        Some(users as u64),
        "{first_run}"
    );
    assert_eq!(
        second_run["counts"]["users_updated"].as_u64(),
        Some(0),
        "{second_run}"
    );
    Figures {
        backend: backend.to_string(),
        memberships: counts["memberships_added"].as_u64().unwrap_or(0),
        requests: first_run["progress"]["requests"].as_u64().unwrap_or(0),
        first,
        second,
        peak: peaks.0,
        peak_linked: peaks.1,
        rows_written: changed.0,
        third,
        third_changed: changed.1,
        acks: acks.len(),
        ack_p50_ms: percentile_ms(&acks, 0.50),
        ack_p99_ms: percentile_ms(&acks, 0.99),
        ack_max_ms: percentile_ms(&acks, 1.0),
    }
}

fn main() {
    let (users, groups, linked) = if measuring() {
        (
            env_or("BENCH_USERS", 100_000),
            env_or("BENCH_GROUPS", 1_000),
            env_or("BENCH_LINKED_GROUPS", 20),
        )
    } else {
        (200, 10, 3)
    };
    println!(
        "\nFull pull of a dev-broker directory ({users} users, {groups} groups, no rate limit)\n"
    );
    println!(
        "| backend | memberships | requests | first pull | second pull | peak memory | second/first | tables changed by the second | at 4 req/s | pull with {linked} groups linked, 2 mapped | tables it changed | peak memory, all three |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut during = Vec::new();
    for backend in backends() {
        let f = measure(&backend, users, groups, linked);
        println!(
            "| {} | {} | {} | {:.1} s | {:.1} s | {:.0} MiB | {:.2} | {} | {:.0} min | {:.1} s | {} | {:.0} MiB |",
            f.backend,
            f.memberships,
            f.requests,
            f.first.as_secs_f64(),
            f.second.as_secs_f64(),
            f.peak,
            f.second.as_secs_f64() / f.first.as_secs_f64(),
            f.rows_written,
            f.requests as f64 / 4.0 / 60.0,
            f.third.as_secs_f64(),
            f.third_changed,
            f.peak_linked,
        );
        during.push(format!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
            f.backend, f.acks, f.ack_p50_ms, f.ack_p99_ms, f.ack_max_ms
        ));
    }
    println!("\nWebhook acknowledgements during the first pull (one every 20 ms)\n");
    println!("| backend | webhooks | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    for row in during {
        println!("{row}");
    }
}
