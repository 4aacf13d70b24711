//! Catching up after missed webhooks: a `rollcall dev-broker` directory (10,000 users, 200 groups by
//! default) is pulled once by `rollcall serve`, then the broker makes 10,000 changes whose webhooks are all
//! dropped. What repairs them is timed and its broker requests counted:
//!
//! (a) the Events API tail: a second `rollcall serve`, its tail placed after its first pull, is stopped
//!     while the changes happen; then `rollcall tail --once` reads the missed events after the cursor,
//!     stores and applies them (its wall time, process start included);
//! (b) a full pull of the directory by the first service (its tail off), at no rate limit.
//!
//! "At the broker's limit" is the least time the same requests take at the broker's limits: 4 user listings
//! a second per directory (counting every pull request as one, as the pull benchmark does), and 6,000
//! Events API requests a minute per key.
//!
//! `cargo bench --bench tail` (env: BENCH_USERS, BENCH_GROUPS, BENCH_CHANGES, BENCH_BACKENDS).

mod support;

use diesel::prelude::*;
use reqwest::Method;
use rollcall::broker::EVENTS_RATE_PER_KEY;
use rollcall::db::{Database, DbError};
use rollcall::dev_broker::{
    DevBroker, DevBrokerConfig, DevBrokerHandle, DirectorySource, GenerateOptions, WebhookTarget,
};
use std::time::Duration;
use support::{
    backends, database_url, env_or, free_port, measuring, operator, pull, run_to_end, runtime,
    scratch, spawn, synced_workspace, wait_until_up, Process, Scratch, OPERATOR, SECRET,
};

const API_KEY: &str = "sk_test_bench";
const DIRECTORY: &str = "directory_dev";
const ORGANIZATION: &str = "org_dev";
/// The broker's limit on user listings, per directory.
const USER_LISTINGS_PER_SECOND: f64 = 4.0;

/// The directory and how much changes at the broker while webhooks are lost.
#[derive(Clone, Copy)]
struct Sizes {
    users: usize,
    groups: usize,
    changes: usize,
}

/// A dev broker in this process whose webhooks to `webhook_port` are all dropped.
async fn broker(sizes: Sizes, webhook_port: u16) -> DevBrokerHandle {
    let mut config = DevBrokerConfig {
        api_key: API_KEY.into(),
        source: DirectorySource::Generate(GenerateOptions {
            users: sizes.users as u32,
            groups: sizes.groups as u32,
            memberships_per_user: 3.0,
            inactive_share: 0.0,
        }),
        webhook: Some(WebhookTarget {
            url: format!("http://127.0.0.1:{webhook_port}/webhooks/workos"),
            secret: SECRET.into(),
        }),
        ..DevBrokerConfig::default()
    };
    config.faults.drop = 1.0;
    DevBroker::start(config)
        .await
        .expect("the dev broker starts")
}

/// The settings `rollcall serve` and `rollcall tail` share: the database and the broker, at no rate limit.
fn environment(db: &Scratch, broker: &DevBrokerHandle) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url(&db.target)),
        ("WORKOS_API_KEY", API_KEY.to_string()),
        ("WORKOS_API_BASE", broker.base_url.clone()),
        ("WORKOS_USER_LISTING_RATE", "0".to_string()),
        ("WORKOS_WEBHOOK_SECRETS", SECRET.to_string()),
    ]
}

/// `rollcall serve` on a scratch database, on `port`, with its Events API tail on or off; no scheduled pulls.
fn service(db: &Scratch, port: u16, broker: &DevBrokerHandle, tail: bool) -> Process {
    let mut env = environment(db, broker);
    env.extend([
        ("ROLLCALL_BIND", format!("127.0.0.1:{port}")),
        ("ROLLCALL_OPERATOR_TOKEN", OPERATOR.to_string()),
        ("RESYNC_INTERVAL", "0".to_string()),
        (
            "ROLLCALL_EVENTS_POLL_INTERVAL",
            if tail { "1s" } else { "0" }.to_string(),
        ),
    ]);
    spawn(&["serve"], &env)
}

/// Waits until the service's tail has caught up once (after its own first pull), so it has a place.
async fn tail_placed(client: &reqwest::Client, base: &str) {
    loop {
        let tail = operator(
            client,
            Method::GET,
            format!("{base}/api/v1/event-tail"),
            None,
            200,
        )
        .await;
        if tail["state"] == "idle" && !tail["last_poll_at"].is_null() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `rollcall tail --once` on the database: its wall time, and the events and pages it read, from what it
/// prints ("caught up: N events read in P pages, …").
async fn tail_once(db: &Scratch, broker: &DevBrokerHandle) -> (Duration, u64, u64) {
    let (took, printed) = run_to_end(&["tail", "--once"], &environment(db, broker)).await;
    let numbers: Vec<u64> = printed
        .trim()
        .strip_prefix("caught up: ")
        .unwrap_or_default()
        .split([' ', ','])
        .filter_map(|word| word.parse().ok())
        .collect();
    match numbers[..] {
        [events, pages, ..] => (took, events, pages),
        _ => panic!("rollcall tail --once printed {printed:?}"),
    }
}

/// What one way of catching up took.
struct Repair {
    requests: u64,
    took: Duration,
}

struct Figures {
    backend: String,
    events: u64,
    tail: Repair,
    pull: Repair,
}

/// The directory's live users, groups and memberships in a database.
fn directory_rows(db: &Scratch) -> Vec<i64> {
    let db = Database::connect(db.target.clone(), 1).unwrap();
    let queries = [
        "SELECT COUNT(*) AS n FROM directory_users WHERE deleted_at IS NULL",
        "SELECT COUNT(*) AS n FROM directory_groups WHERE deleted_at IS NULL",
        "SELECT COUNT(*) AS n FROM directory_group_memberships m \
         JOIN directory_users u ON u.id = m.user_id JOIN directory_groups g ON g.id = m.group_id \
         WHERE m.is_member AND u.deleted_at IS NULL AND g.deleted_at IS NULL",
    ];
    db.read(|conn| {
        queries
            .iter()
            .map(|query| {
                #[derive(QueryableByName)]
                struct Count {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    n: i64,
                }
                let count: Count =
                    rollcall::on_backend!(conn, |c| diesel::sql_query(*query).get_result(c))?;
                Ok(count.n)
            })
            .collect::<Result<Vec<i64>, DbError>>()
    })
    .unwrap()
}

/// Starts a service, turns directory sync on for the organization and pulls the directory once.
async fn pulled_once(
    client: &reqwest::Client,
    db: &Scratch,
    broker: &DevBrokerHandle,
    sizes: Sizes,
    tail: bool,
) -> (Process, String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let process = service(db, port, broker, tail);
    wait_until_up(client, &format!("{base}/healthz")).await;
    synced_workspace(client, &base, ORGANIZATION).await;
    pull(client, &base, DIRECTORY).await;
    assert_eq!(
        directory_rows(db)[0],
        sizes.users as i64,
        "every user pulled"
    );
    (process, base)
}

fn measure(backend: &str, sizes: Sizes) -> Figures {
    let rt = runtime();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let broker = broker(sizes, free_port()).await;
        let (pull_db, tail_db) = (scratch(backend), scratch(backend));
        let (_service, base) = pulled_once(&client, &pull_db, &broker, sizes, false).await;
        let (tailing, tail_base) = pulled_once(&client, &tail_db, &broker, sizes, true).await;
        tail_placed(&client, &tail_base).await;
        drop(tailing);

        // The changes, every webhook lost.
        let before = broker.event_summary().total;
        broker.random_changes(sizes.changes as u32);
        assert!(broker.settle(Duration::from_secs(600)).await);
        let summary = broker.event_summary();
        let events = summary.total - before;
        assert_eq!(summary.delivered, 0, "{summary:?}");

        // (a) The tail reads them after its cursor.
        let (tail_took, read, pages) = tail_once(&tail_db, &broker).await;
        assert_eq!(read, events, "the tail read every missed event");
        // (b) A full pull repairs them.
        let (run, took) = pull(&client, &base, DIRECTORY).await;
        // Both ways reach the broker's directory.
        let truth = broker.truth();
        let truth = [
            truth.users.len(),
            truth.groups.len(),
            truth.memberships.len(),
        ];
        let truth: Vec<i64> = truth.iter().map(|n| *n as i64).collect();
        assert_eq!(directory_rows(&pull_db), truth, "after the pull");
        assert_eq!(directory_rows(&tail_db), truth, "after the tail");
        Figures {
            backend: backend.to_string(),
            events,
            tail: Repair {
                requests: pages,
                took: tail_took,
            },
            pull: Repair {
                requests: run["progress"]["requests"].as_u64().unwrap_or(0),
                took,
            },
        }
    })
}

fn main() {
    let sizes = if measuring() {
        Sizes {
            users: env_or("BENCH_USERS", 10_000),
            groups: env_or("BENCH_GROUPS", 200),
            changes: env_or("BENCH_CHANGES", 10_000),
        }
    } else {
        Sizes {
            users: 200,
            groups: 10,
            changes: 300,
        }
    };
    println!(
        "\nCatching up after {} changes whose webhooks were all dropped ({} users, {} groups)\n",
        sizes.changes, sizes.users, sizes.groups
    );
    println!("| backend | missed events | way | broker requests | catch-up time | at the broker's limit |");
    println!("|---|---:|---|---:|---:|---:|");
    for backend in backends() {
        let f = measure(&backend, sizes);
        println!(
            "| {} | {} | (a) Events API tail | {} | {:.1} s | {:.1} s |",
            f.backend,
            f.events,
            f.tail.requests,
            f.tail.took.as_secs_f64(),
            f.tail.requests as f64 / EVENTS_RATE_PER_KEY,
        );
        println!(
            "| {} | {} | (b) full pull | {} | {:.1} s | {:.0} s |",
            f.backend,
            f.events,
            f.pull.requests,
            f.pull.took.as_secs_f64(),
            f.pull.requests as f64 / USER_LISTINGS_PER_SECOND,
        );
    }
}
