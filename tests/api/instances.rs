//! Several `rollcall serve` processes on one PostgreSQL, webhooks spread across them: every delivery is
//! applied exactly once, each member's changes are applied in the order their deliveries arrived, and a
//! workspace whose lock is held holds up only its own events (rule 18).

use crate::broker::{at, event, TestDirectory};
use crate::helpers::{Backend, TestDatabase, OPERATOR_TOKEN, SECRET};
use crate::process::{rollcall, Started};
use diesel::prelude::*;
use rollcall::db::schema::{audit_log, webhook_events};
use rollcall::db::{Database, DbError};
use rollcall::secret::ExposeSecret;
use rollcall::workos::signature;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// People whose records change; each gets a sequence of changes.
const PEOPLE: usize = 40;
/// Snapshots per person after the first, each a new name.
const RENAMES: usize = 6;

fn serve(url: &str) -> Started {
    let mut command = rollcall();
    command
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("WORKOS_WEBHOOK_SECRETS", SECRET)
        .env("ROLLCALL_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("ROLLCALL_DB_POOL_SIZE", "4");
    Started::start(command)
}

/// Two `serve` processes on the test database, once both answer.
async fn two_instances(database: &TestDatabase) -> ([u16; 2], Vec<Started>) {
    let url = match &database.target {
        rollcall::db::DatabaseTarget::Postgres(url) => url.expose_secret().to_owned(),
        other => unreachable!("{other:?}"),
    };
    tokio::task::spawn_blocking(move || {
        let processes = vec![serve(&url), serve(&url)];
        ([processes[0].port, processes[1].port], processes)
    })
    .await
    .unwrap()
}

async fn post_signed(client: &reqwest::Client, port: u16, body: &Value) {
    let body = body.to_string();
    let header = signature::sign(SECRET, signature::now_ms(), body.as_bytes());
    let response = client
        .post(format!("http://127.0.0.1:{port}/webhooks/workos"))
        .header("content-type", "application/json")
        .header("WorkOS-Signature", header)
        .body(body)
        .send()
        .await
        .expect("the webhook is sent");
    assert_eq!(response.status(), 200);
}

async fn operator(
    client: &reqwest::Client,
    port: u16,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let response = client
        .request(method, format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// A growth workspace for the directory's organization, created on one instance and turned on through
/// the other; returns its id.
async fn synced_workspace(
    client: &reqwest::Client,
    ports: [u16; 2],
    dir: &TestDirectory,
) -> String {
    let ws = operator(
        client,
        ports[0],
        reqwest::Method::POST,
        "/api/v1/workspaces",
        json!({ "name": "Shared", "plan": "growth", "organization_id": dir.organization_id }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    operator(
        client,
        ports[1],
        reqwest::Method::PUT,
        &format!("/api/v1/workspaces/{ws}/directory-sync"),
        json!({ "enabled": true }),
    )
    .await;
    ws
}

/// Sends each person's snapshots one after another, each to the other instance than the last; the people
/// are sent at once, so both instances take deliveries all the time.
async fn send_people(client: &reqwest::Client, ports: [u16; 2], dir: &TestDirectory) {
    let senders: Vec<_> = (0..PEOPLE)
        .map(|person| {
            let (client, dir) = (client.clone(), dir.clone());
            tokio::spawn(async move {
                for version in 0..=RENAMES {
                    let minute = version as u32 + 1;
                    let user = dir.user(
                        &format!("directory_user_{person}_{}", dir.tag),
                        &format!("idp-{person}"),
                        Some(&format!("person{person}@example.com")),
                        &format!("Name {version}"),
                        "active",
                        &at(minute),
                    );
                    let kind = if version == 0 {
                        "dsync.user.created"
                    } else {
                        "dsync.user.updated"
                    };
                    let port = ports[(person + version) % 2];
                    post_signed(&client, port, &event(kind, user, &at(minute))).await;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
}

/// A stored delivery: id, event id, status, attempts.
type Delivery = (i64, Option<String>, String, i32);

/// The deliveries of one directory (or all), in id order.
fn deliveries(db: &Database, directory: Option<&str>) -> Vec<Delivery> {
    db.read(|c| {
        let mut rows = webhook_events::table
            .order(webhook_events::id)
            .select((
                webhook_events::id,
                webhook_events::event_id,
                webhook_events::status,
                webhook_events::attempts,
            ))
            .into_boxed();
        if let Some(directory) = directory {
            rows = rows.filter(webhook_events::directory_id.eq(directory.to_string()));
        }
        rows.load(c).map_err(DbError::from)
    })
    .unwrap()
}

/// Waits until none of the directory's (or any) deliveries waits; returns them.
async fn all_applied(db: &Database, directory: Option<&str>) -> Vec<Delivery> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = deliveries(db, directory);
        if rows.iter().all(|(_, _, status, _)| status != "received") {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still waiting after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each delivery applied exactly once, by one instance, in one attempt; and each member's audit entries
/// follow their deliveries' order, every rename seen.
fn assert_applied_once_in_arrival_order(db: &Database, ws: &str, deliveries: &[Delivery]) {
    for (id, _, status, attempts) in deliveries {
        assert_eq!(
            (status.as_str(), *attempts),
            ("applied", 1),
            "delivery {id}"
        );
    }
    let delivery_of: HashMap<String, i64> = deliveries
        .iter()
        .map(|(id, event_id, _, _)| (event_id.clone().unwrap(), *id))
        .collect();
    let entries: Vec<(String, String, String)> = db
        .read(|c| {
            audit_log::table
                .filter(audit_log::workspace_id.eq(ws))
                .filter(audit_log::subject_type.eq("member"))
                .order(audit_log::id)
                .select((
                    audit_log::subject_id,
                    audit_log::cause_id,
                    audit_log::action,
                ))
                .load(c)
                .map_err(DbError::from)
        })
        .unwrap();
    let mut by_member: HashMap<&str, Vec<i64>> = HashMap::new();
    for (member, cause, _) in &entries {
        by_member
            .entry(member)
            .or_default()
            .push(delivery_of[cause.as_str()]);
    }
    assert_eq!(by_member.len(), PEOPLE);
    for (member, order) in by_member {
        assert_eq!(
            order.len(),
            RENAMES + 1,
            "member {member}: one entry per snapshot"
        );
        assert!(
            order.windows(2).all(|pair| pair[0] < pair[1]),
            "member {member}: applied out of arrival order: {order:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_apply_every_delivery_once_in_arrival_order() {
    let database = TestDatabase::new(Backend::Postgres);
    let (ports, _processes) = two_instances(&database).await;
    let client = reqwest::Client::new();
    let dir = TestDirectory::new();
    let ws = synced_workspace(&client, ports, &dir).await;
    send_people(&client, ports, &dir).await;
    let db = Database::connect(database.target.clone(), 2).unwrap();
    let deliveries = all_applied(&db, None).await;
    assert_eq!(deliveries.len(), PEOPLE * (RENAMES + 1));
    assert_applied_once_in_arrival_order(&db, &ws, &deliveries);
}

/// Two instances, two workspaces, and a third party (a long admin transaction) holding workspace A's
/// lock: B's events are applied meanwhile, whichever instance took them, while A's wait; once A's lock is
/// free, A's are applied, each once and in arrival order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_apply_one_workspace_while_another_is_held() {
    let database = TestDatabase::new(Backend::Postgres);
    let (ports, _processes) = two_instances(&database).await;
    let client = reqwest::Client::new();
    let (dir_a, dir_b) = (TestDirectory::new(), TestDirectory::new());
    let ws_a = synced_workspace(&client, ports, &dir_a).await;
    let ws_b = synced_workspace(&client, ports, &dir_b).await;
    let db = Database::connect(database.target.clone(), 2).unwrap();
    let held = db.hold_workspace(&ws_a).expect("A's lock is taken");

    tokio::join!(
        send_people(&client, ports, &dir_a),
        send_people(&client, ports, &dir_b)
    );
    let applied_b = all_applied(&db, Some(&dir_b.id)).await;
    assert_eq!(applied_b.len(), PEOPLE * (RENAMES + 1));
    assert_applied_once_in_arrival_order(&db, &ws_b, &applied_b);
    let waiting_a = deliveries(&db, Some(&dir_a.id));
    assert_eq!(waiting_a.len(), PEOPLE * (RENAMES + 1));
    assert!(
        waiting_a
            .iter()
            .all(|(_, _, status, attempts)| status == "received" && *attempts == 0),
        "A's events wait for A's lock"
    );

    drop(held);
    let applied_a = all_applied(&db, Some(&dir_a.id)).await;
    assert_applied_once_in_arrival_order(&db, &ws_a, &applied_a);
}
