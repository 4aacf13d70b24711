//! Catching up after missed webhooks: a `rollcall dev-broker` directory (10,000 users, 200 groups by
//! default) is pulled once by `rollcall serve`, then the broker makes 10,000 changes whose webhooks are all
//! dropped. What repairs them is timed and its broker requests counted:
//!
//! (a) the Events API tail reading the missed events after its cursor and applying them (pending: it needs
//!     the tail's one-shot catch-up);
//! (b) a full pull of the directory, at no rate limit, with the time the same requests would take at the
//!     broker's 4 user listings per second.
//!
//! `cargo bench --bench tail` (env: BENCH_USERS, BENCH_GROUPS, BENCH_CHANGES, BENCH_BACKENDS).

mod support;

use rollcall::dev_broker::{
    DevBroker, DevBrokerConfig, DevBrokerHandle, DirectorySource, GenerateOptions, WebhookTarget,
};
use std::time::Duration;
use support::{
    backends, database_url, env_or, free_port, measuring, pull, runtime, scratch, spawn,
    synced_workspace, wait_until_up, Process, Scratch, OPERATOR, SECRET,
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

/// `rollcall serve` on a scratch database, pulling from the broker at no rate limit, on `port`.
fn service(db: &Scratch, port: u16, broker: &DevBrokerHandle) -> Process {
    spawn(
        &["serve"],
        &[
            ("DATABASE_URL", database_url(&db.target)),
            ("ROLLCALL_BIND", format!("127.0.0.1:{port}")),
            ("ROLLCALL_OPERATOR_TOKEN", OPERATOR.to_string()),
            ("WORKOS_API_KEY", API_KEY.to_string()),
            ("WORKOS_API_BASE", broker.base_url.clone()),
            ("WORKOS_USER_LISTING_RATE", "0".to_string()),
            ("RESYNC_INTERVAL", "0".to_string()),
            ("WORKOS_WEBHOOK_SECRETS", SECRET.to_string()),
        ],
    )
}

/// What one way of catching up took.
struct Repair {
    requests: u64,
    took: Duration,
    /// Users, groups and memberships it created, updated or removed.
    applied: u64,
}

struct Figures {
    backend: String,
    events: u64,
    pull: Repair,
}

fn applied(run: &serde_json::Value) -> u64 {
    [
        "users_created",
        "users_updated",
        "users_deleted",
        "groups_created",
        "groups_updated",
        "groups_deleted",
        "memberships_added",
        "memberships_removed",
    ]
    .iter()
    .filter_map(|k| run["counts"][k].as_u64())
    .sum()
}

fn measure(backend: &str, sizes: Sizes) -> Figures {
    let rt = runtime();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let broker = broker(sizes, port).await;
        let db = scratch(backend);
        let _service = service(&db, port, &broker);
        wait_until_up(&client, &format!("{base}/healthz")).await;
        synced_workspace(&client, &base, ORGANIZATION).await;
        let (first, _) = pull(&client, &base, DIRECTORY).await;
        assert_eq!(
            first["counts"]["users_created"].as_u64(),
            Some(sizes.users as u64),
            "{first}"
        );

        // The changes, every webhook lost.
        let before = broker.event_summary().total;
        broker.random_changes(sizes.changes as u32);
        assert!(broker.settle(Duration::from_secs(600)).await);
        let summary = broker.event_summary();
        let events = summary.total - before;
        assert_eq!(summary.delivered, 0, "{summary:?}");

        // (b) A full pull repairs them.
        let (run, took) = pull(&client, &base, DIRECTORY).await;
        Figures {
            backend: backend.to_string(),
            events,
            pull: Repair {
                requests: run["progress"]["requests"].as_u64().unwrap_or(0),
                took,
                applied: applied(&run),
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
    println!(
        "| backend | missed events | way | broker requests | catch-up time | at the broker's limit | rows changed |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|");
    for backend in backends() {
        let f = measure(&backend, sizes);
        println!(
            "| {} | {} | (a) Events API tail | pending | pending | pending | pending |",
            f.backend, f.events
        );
        println!(
            "| {} | {} | (b) full pull | {} | {:.1} s | {:.0} s | {} |",
            f.backend,
            f.events,
            f.pull.requests,
            f.pull.took.as_secs_f64(),
            f.pull.requests as f64 / USER_LISTINGS_PER_SECOND,
            f.pull.applied,
        );
    }
}
