//! Teams at scale: linking a directory group of 10,000 members to a team and unlinking it, over HTTP; and
//! `dsync.group.user_added` to a group linked to 20 teams and mapped to a role, against an unlinked group.
//!
//! `cargo bench --bench teams` (env: BENCH_GROUP_SIZE, BENCH_EVENTS, BENCH_SENDERS, BENCH_BACKENDS).

mod support;

use diesel::prelude::*;
use reqwest::Method;
use rollcall::db::models::{
    DirectoryGroupRow, DirectoryRow, DirectoryUserRow, GroupMembershipRow, MemberRow,
};
use rollcall::db::schema::{
    directories, directory_group_memberships, directory_groups, directory_users, members,
};
use rollcall::db::{Database, DbError};
use rollcall::domain::UserState;
use rollcall::ids::DirectoryUserId;
use rollcall::on_backend;
use rollcall::workos::timestamp;
use serde_json::{json, Value};
use std::time::Instant;
use support::{
    backends, deliver_all, env_or, measuring, operator, runtime, scratch, start_service,
    synced_workspace, Delivery,
};

const ORG: &str = "org_teams_bench";
const DIRECTORY: &str = "directory_teams_bench";
const BIG: &str = "directory_group_big";
const LINKED: &str = "directory_group_linked";
const PLAIN: &str = "directory_group_plain";

fn user_id(i: usize) -> DirectoryUserId {
    format!("directory_user_{i:06}").into()
}

fn user_json(i: usize) -> Value {
    json!({
        "object": "directory_user", "id": user_id(i), "directory_id": DIRECTORY, "organization_id": ORG,
        "idp_id": format!("idp-{i}"), "email": format!("p{i}@bench.example"), "first_name": "P", "last_name": format!("{i}"),
        "state": "active", "created_at": "2026-03-02T10:00:00.000Z", "updated_at": "2026-03-02T10:00:00.000Z",
    })
}

fn group_json(id: &str) -> Value {
    json!({
        "object": "directory_group", "id": id, "idp_id": id, "directory_id": DIRECTORY, "organization_id": ORG,
        "name": id, "created_at": "2026-03-02T10:00:00.000Z", "updated_at": "2026-03-02T10:00:00.000Z",
    })
}

/// Writes a directory of `size` active members, all in the big group, straight into the database.
fn seed_directory(db: &Database, workspace_id: &str, size: usize) {
    let now = timestamp::now();
    let at = timestamp::parse("2026-03-02T10:00:00.000Z").unwrap();
    db.write(|conn| {
        diesel::insert_into(directories::table)
            .values(DirectoryRow {
                id: DIRECTORY.into(),
                organization_id: ORG.into(),
                directory_type: "okta scim v2.0".into(),
                name: "Bench".into(),
                state: "active".into(),
                source_updated_at: at,
                source_event_at: at,
                deleted_at: None,
                last_synced_at: None,
                created_at: now,
                updated_at: now,
            })
            .execute(conn)?;
        for group in [BIG, LINKED, PLAIN] {
            diesel::insert_into(directory_groups::table)
                .values(DirectoryGroupRow {
                    id: group.into(),
                    directory_id: DIRECTORY.into(),
                    idp_id: group.into(),
                    name: group.into(),
                    snapshot: group_json(group).to_string(),
                    source_updated_at: at,
                    source_event_at: at,
                    deleted_at: None,
                    created_at: now,
                    updated_at: now,
                })
                .execute(conn)?;
        }
        let users: Vec<DirectoryUserRow> = (0..size)
            .map(|i| DirectoryUserRow {
                id: user_id(i),
                directory_id: DIRECTORY.into(),
                idp_id: format!("idp-{i}"),
                email: Some(format!("p{i}@bench.example")),
                first_name: Some("P".into()),
                last_name: Some(format!("{i}")),
                state: UserState::Active,
                snapshot: user_json(i).to_string(),
                source_updated_at: at,
                source_event_at: at,
                ever_active: true,
                deleted_at: None,
                created_at: now,
                updated_at: now,
                role_slugs: "[]".into(),
            })
            .collect();
        let people: Vec<MemberRow> = (0..size)
            .map(|i| MemberRow {
                id: format!("mem_{i:06}"),
                workspace_id: workspace_id.into(),
                email: format!("p{i}@bench.example"),
                email_key: format!("p{i}@bench.example"),
                first_name: Some("P".into()),
                last_name: Some(format!("{i}")),
                role: rollcall::domain::Role::Viewer,
                status: rollcall::domain::MemberStatus::Active,
                managed_by: rollcall::domain::ManagedBy::Directory,
                directory_user_id: Some(user_id(i)),
                created_at: now,
                updated_at: now,
            })
            .collect();
        let memberships: Vec<GroupMembershipRow> = (0..size)
            .map(|i| GroupMembershipRow {
                group_id: BIG.into(),
                user_id: user_id(i),
                directory_id: DIRECTORY.into(),
                is_member: true,
                last_event_at: at,
                updated_at: now,
                last_event_id: None,
            })
            .collect();
        for chunk in users.chunks(1000) {
            on_backend!(conn, |c| diesel::insert_into(directory_users::table)
                .values(chunk)
                .execute(c))?;
        }
        for chunk in people.chunks(1000) {
            on_backend!(conn, |c| diesel::insert_into(members::table)
                .values(chunk)
                .execute(c))?;
        }
        for chunk in memberships.chunks(1000) {
            on_backend!(conn, |c| diesel::insert_into(
                directory_group_memberships::table
            )
            .values(chunk)
            .execute(c))?;
        }
        Ok::<_, DbError>(())
    })
    .unwrap();
}

/// `user_added` events for the first `count` users into `group`, one minute after the seed.
fn additions(count: usize, group: &str) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            json!({
                "object": "event", "id": format!("event_{group}_{i:06}"), "event": "dsync.group.user_added",
                "created_at": "2026-03-02T10:01:00.000Z",
                "data": { "directory_id": DIRECTORY, "user": user_json(i), "group": group_json(group) },
            })
            .to_string()
            .into_bytes()
        })
        .collect()
}

struct Figures {
    link_ms: f64,
    unlink_remove_ms: f64,
    relink_ms: f64,
    unlink_keep_ms: f64,
    plain: Delivery,
    linked: Delivery,
}

async fn timed(
    client: &reqwest::Client,
    method: Method,
    url: String,
    body: Option<Value>,
    expect: u16,
) -> (f64, Value) {
    let started = Instant::now();
    let value = operator(client, method, url, body, expect).await;
    (started.elapsed().as_secs_f64() * 1000.0, value)
}

async fn measure(backend: &str, size: usize, events: usize, senders: usize) -> Figures {
    let scratch = scratch(backend);
    let service = start_service(scratch.target.clone());
    let (base, db) = (service.base.clone(), service.db.clone());
    let client = reqwest::Client::new();
    let ws = synced_workspace(&client, &base, ORG).await;
    {
        let (db, ws) = (db.clone(), ws.clone());
        tokio::task::spawn_blocking(move || seed_directory(&db, &ws, size))
            .await
            .unwrap();
    }
    let api = format!("{base}/api/v1/workspaces/{ws}");
    let team = operator(
        &client,
        Method::POST,
        format!("{api}/teams"),
        Some(json!({"name": "Everyone"})),
        201,
    )
    .await;
    let team = team["id"].as_str().unwrap().to_string();
    let links = format!("{api}/teams/{team}/directory-groups");
    let (link_ms, linked) = timed(
        &client,
        Method::POST,
        links.clone(),
        Some(json!({"group_id": BIG})),
        201,
    )
    .await;
    assert_eq!(linked["members_added"], size);
    let (unlink_remove_ms, _) = timed(
        &client,
        Method::DELETE,
        format!("{links}/{BIG}?members=remove"),
        None,
        204,
    )
    .await;
    let (relink_ms, _) = timed(
        &client,
        Method::POST,
        links.clone(),
        Some(json!({"group_id": BIG})),
        201,
    )
    .await;
    let (unlink_keep_ms, _) = timed(
        &client,
        Method::DELETE,
        format!("{links}/{BIG}?members=keep"),
        None,
        204,
    )
    .await;

    for i in 0..20 {
        let team = operator(
            &client,
            Method::POST,
            format!("{api}/teams"),
            Some(json!({"name": format!("Linked {i}")})),
            201,
        )
        .await;
        let team = team["id"].as_str().unwrap();
        operator(
            &client,
            Method::POST,
            format!("{api}/teams/{team}/directory-groups"),
            Some(json!({"group_id": LINKED})),
            201,
        )
        .await;
    }
    operator(
        &client,
        Method::PUT,
        format!("{api}/role-mappings"),
        Some(json!([{"group_id": LINKED, "role": "builder"}])),
        200,
    )
    .await;
    let plain = deliver_all(&base, &db, additions(events, PLAIN), senders).await;
    let linked = deliver_all(&base, &db, additions(events, LINKED), senders).await;
    let builders = operator(
        &client,
        Method::GET,
        format!("{api}/members?limit=1000"),
        None,
        200,
    )
    .await;
    let promoted = builders["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "builder")
        .count();
    assert_eq!(
        promoted,
        events.min(1000),
        "every added member got the mapped role"
    );
    service.stop().await;
    Figures {
        link_ms,
        unlink_remove_ms,
        relink_ms,
        unlink_keep_ms,
        plain,
        linked,
    }
}

fn main() {
    let size = env_or("BENCH_GROUP_SIZE", if measuring() { 10_000 } else { 300 });
    let events = env_or("BENCH_EVENTS", if measuring() { 2_000 } else { 100 });
    let senders = env_or("BENCH_SENDERS", 64);
    let runtime = runtime();
    println!(
        "linking a directory group of {size} members to a team over HTTP (ms, one request each)"
    );
    println!();
    println!("| backend | link | unlink ?members=remove | link again | unlink ?members=keep |");
    println!("|---|---:|---:|---:|---:|");
    let mut deliveries = Vec::new();
    for backend in backends() {
        let f = runtime.block_on(measure(&backend, size, events, senders));
        println!(
            "| {backend} | {:.0} | {:.0} | {:.0} | {:.0} |",
            f.link_ms, f.unlink_remove_ms, f.relink_ms, f.unlink_keep_ms
        );
        deliveries.push((backend, f.plain, f.linked));
    }
    println!();
    println!("{events} dsync.group.user_added events over HTTP, {senders} concurrent senders");
    println!();
    println!("| backend | group | events/s | p50 ack ms | p99 ack ms | applied/s (end to end) |");
    println!("|---|---|---:|---:|---:|---:|");
    for (backend, plain, linked) in deliveries {
        for (what, d) in [
            ("not linked, not mapped", plain),
            ("linked to 20 teams, mapped to a role", linked),
        ] {
            println!(
                "| {backend} | {what} | {:.0} | {:.1} | {:.1} | {:.0} |",
                d.events_per_s, d.p50_ms, d.p99_ms, d.applied_per_s
            );
        }
    }
}
