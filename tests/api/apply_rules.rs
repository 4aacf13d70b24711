//! The apply engine's rules: ordering, tombstones, returning users, skipped workspaces, conflicts, retries.

use crate::broker::{at, event, TestDirectory};
use crate::helpers::{Backend, TestApp, TestDatabase};
use diesel::prelude::*;
use itertools::Itertools;
use reqwest::{Method, StatusCode};
use rollcall::db::models::{NewWebhookEvent, WorkspaceRow};
use rollcall::db::schema::{
    directory_group_memberships, directory_users, members, webhook_events, workspaces,
};
use rollcall::db::{Database, DbConnection, DbError};
use rollcall::directory_sync::store::Store;
use rollcall::directory_sync::{apply_event, with_store, ApplyError, ApplyOutcome};
use rollcall::intake::applier::{apply_due, RetryPolicy};
use rollcall::workos::events::Event;
use rollcall::workos::timestamp;
use serde_json::Value;
use std::time::Duration;

/// A growth workspace with directory sync on for the directory's organization, written straight to the
/// database.
fn insert_workspace(db: &Database, organization_id: &str) -> String {
    let id = format!("ws_{}", crate::broker::unique());
    let now = timestamp::now();
    let row = WorkspaceRow {
        id: id.clone(),
        name: "Ordering".into(),
        plan: rollcall::domain::Plan::Growth,
        organization_id: organization_id.into(),
        directory_sync_enabled: true,
        default_role: rollcall::domain::Role::Viewer,
        created_at: now,
        updated_at: now,
        role_source: rollcall::domain::RoleSource::GroupMappings,
        default_role_slug: rollcall::workspaces::DEFAULT_ROLE_SLUG.into(),
    };
    db.write(|c| {
        diesel::insert_into(workspaces::table)
            .values(&row)
            .execute(c)
            .map_err(DbError::from)
    })
    .unwrap();
    id
}

fn apply_json(db: &Database, event: &Value) -> ApplyOutcome {
    let parsed = Event::parse(event.to_string().as_bytes()).unwrap();
    db.write(|c| {
        with_store(c, |store| apply_event(store, &parsed, timestamp::now()))
            .map_err(|ApplyError::Db(e)| DbError::from(e))
    })
    .unwrap()
}

/// A member's email, first name, status, manager, role and directory user.
type MemberFacts = (
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
);

/// Everything the rules decide for one directory, without ids and clock times that differ per run.
fn state_of(db: &Database, ws: &str, dir: &TestDirectory) -> Vec<String> {
    db.read(|c: &mut DbConnection| {
        let mut state = Vec::new();
        let found: Vec<MemberFacts> = members::table
            .filter(members::workspace_id.eq(ws))
            .select((
                members::email,
                members::first_name,
                members::status,
                members::managed_by,
                members::role,
                members::directory_user_id,
            ))
            .order(members::email)
            .load(c)?;
        state.extend(found.iter().map(|m| format!("member {m:?}")));
        let users: Vec<(String, Option<String>, String, bool, bool)> = directory_users::table
            .filter(directory_users::directory_id.eq(&dir.id))
            .select((
                directory_users::id,
                directory_users::email,
                directory_users::state,
                directory_users::ever_active,
                directory_users::deleted_at.is_not_null(),
            ))
            .order(directory_users::id)
            .load(c)?;
        state.extend(users.iter().map(|u| format!("directory user {u:?}")));
        let memberships: Vec<(String, String, bool)> = directory_group_memberships::table
            .filter(directory_group_memberships::directory_id.eq(&dir.id))
            .select((
                directory_group_memberships::group_id,
                directory_group_memberships::user_id,
                directory_group_memberships::is_member,
            ))
            .order((
                directory_group_memberships::group_id,
                directory_group_memberships::user_id,
            ))
            .load(c)?;
        state.extend(memberships.iter().map(|m| format!("membership {m:?}")));
        // Ids differ per directory by its tag only.
        Ok::<_, DbError>(state.iter().map(|s| s.replace(&dir.tag, "")).collect())
    })
    .unwrap()
}

/// create, update, add to group, deactivate, delete: the short life of one user.
fn life_of_a_user(dir: &TestDirectory) -> Vec<Value> {
    let user_id = format!("directory_user_pat{}", dir.tag);
    let user = |first: &str, state: &str, minute: u32| {
        dir.user(
            &user_id,
            "idp-pat",
            Some("pat@example.com"),
            first,
            state,
            &at(minute),
        )
    };
    let group = dir.group(
        &format!("directory_group_eng{}", dir.tag),
        "Engineering",
        &at(1),
    );
    vec![
        event("dsync.user.created", user("Pat", "active", 1), &at(1)),
        event("dsync.user.updated", user("Patricia", "active", 2), &at(2)),
        event(
            "dsync.group.user_added",
            dir.membership(&user("Patricia", "active", 2), &group),
            &at(3),
        ),
        event(
            "dsync.user.updated",
            user("Patricia", "inactive", 4),
            &at(4),
        ),
        event(
            "dsync.user.deleted",
            user("Patricia", "inactive", 5),
            &at(5),
        ),
    ]
}

fn every_order_ends_in_the_same_state(backend: Backend) {
    let database = TestDatabase::new(backend);
    let db = database.open();
    let in_order = {
        let dir = TestDirectory::new();
        let ws = insert_workspace(&db, &dir.organization_id);
        for e in life_of_a_user(&dir) {
            assert_eq!(apply_json(&db, &e), ApplyOutcome::Applied);
        }
        state_of(&db, &ws, &dir)
    };
    assert!(
        in_order.iter().any(|s| s.contains("\"deprovisioned\"")),
        "{in_order:?}"
    );
    let mut orders = 0;
    for order in (0..5).permutations(5) {
        let dir = TestDirectory::new();
        let ws = insert_workspace(&db, &dir.organization_id);
        let events = life_of_a_user(&dir);
        for i in &order {
            apply_json(&db, &events[*i]);
        }
        let state = state_of(&db, &ws, &dir);
        assert_eq!(state, in_order, "order {order:?}");
        orders += 1;
    }
    assert_eq!(orders, 120);
}

#[test]
fn every_order_ends_in_the_same_state_sqlite() {
    every_order_ends_in_the_same_state(Backend::Sqlite)
}

#[test]
fn every_order_ends_in_the_same_state_postgres() {
    every_order_ends_in_the_same_state(Backend::Postgres)
}

/// An add and a remove of one (group, user) pair stamped with the same millisecond: the broker's event ids
/// are time-ordered, so the later id wins whichever arrives first.
fn a_membership_tie_goes_to_the_later_event_id(backend: Backend) {
    let database = TestDatabase::new(backend);
    let db = database.open();
    for (added_first, removed_last) in [(true, true), (true, false), (false, true), (false, false)]
    {
        let dir = TestDirectory::new();
        let ws = insert_workspace(&db, &dir.organization_id);
        let user = dir.user(
            &format!("directory_user_tie{}", dir.tag),
            "idp-tie",
            Some("tie@example.com"),
            "Tie",
            "active",
            &at(1),
        );
        let group = dir.group(&format!("directory_group_tie{}", dir.tag), "Tied", &at(1));
        let membership = |kind: &str, id: &str| {
            let mut e = event(kind, dir.membership(&user, &group), &at(2));
            e["id"] = serde_json::json!(format!("event_01KTIE{id}{}", dir.tag));
            e
        };
        // The later id (B) is the remove when `removed_last`, else the add.
        let (add, remove) = if removed_last {
            (
                membership("dsync.group.user_added", "A"),
                membership("dsync.group.user_removed", "B"),
            )
        } else {
            (
                membership("dsync.group.user_added", "B"),
                membership("dsync.group.user_removed", "A"),
            )
        };
        let in_arrival = if added_first {
            [add, remove]
        } else {
            [remove, add]
        };
        for e in &in_arrival {
            apply_json(&db, e);
        }
        let state = state_of(&db, &ws, &dir);
        let membership = state
            .iter()
            .find(|s| s.starts_with("membership"))
            .unwrap_or_else(|| panic!("no membership in {state:?}"));
        assert_eq!(
            membership.ends_with("true)"),
            !removed_last,
            "added first: {added_first}, removed last: {removed_last}: {state:?}"
        );
    }
}

#[test]
fn a_membership_tie_goes_to_the_later_event_id_sqlite() {
    a_membership_tie_goes_to_the_later_event_id(Backend::Sqlite)
}

#[test]
fn a_membership_tie_goes_to_the_later_event_id_postgres() {
    a_membership_tie_goes_to_the_later_event_id(Backend::Postgres)
}

/// Fails every event whose user is called "Poison", after it has written: the savepoint must undo that.
fn poisoned_apply(
    store: &mut Store<'_>,
    event: &Event,
    received_at: timestamp::Timestamp,
) -> Result<ApplyOutcome, ApplyError> {
    let outcome = apply_event(store, event, received_at)?;
    if let rollcall::workos::events::EventPayload::UserCreated(u) = &event.payload {
        if u.first_name.as_deref() == Some("Poison") {
            return Err(ApplyError::Db(diesel::result::Error::RollbackTransaction));
        }
    }
    Ok(outcome)
}

fn a_failing_event_is_retried_then_parked_without_blocking_others(backend: Backend) {
    let database = TestDatabase::new(backend);
    let db = database.open();
    let dir = TestDirectory::new();
    let ws = insert_workspace(&db, &dir.organization_id);
    let events: Vec<Value> = ["Poison", "Healthy"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let id = format!("directory_user_{name}");
            let email = format!("{}@example.com", name.to_lowercase());
            event(
                "dsync.user.created",
                dir.user(&id, &id, Some(&email), name, "active", &at(1)),
                &at(i as u32 + 1),
            )
        })
        .collect();
    let rows: Vec<NewWebhookEvent> = events
        .iter()
        .map(|e| {
            let body = e.to_string().into_bytes();
            NewWebhookEvent::received(&Event::parse(&body).unwrap(), body, timestamp::now())
        })
        .collect();
    rollcall::intake::event_store::insert_batch(&db, &rows).unwrap();
    let policy = RetryPolicy {
        max_attempts: 3,
        first_backoff: Duration::ZERO,
    };
    let first = apply_due(&db, policy, poisoned_apply).unwrap();
    assert_eq!((first.processed, first.failed_attempts), (2, 1));
    for _ in 0..5 {
        apply_due(&db, policy, poisoned_apply).unwrap();
    }
    let statuses: Vec<(String, i32, Option<String>)> = db
        .read(|c| {
            webhook_events::table
                .order(webhook_events::id)
                .select((
                    webhook_events::status,
                    webhook_events::attempts,
                    webhook_events::reason,
                ))
                .load(c)
                .map_err(DbError::from)
        })
        .unwrap();
    assert_eq!(statuses[0].0, "failed");
    assert_eq!(statuses[0].1, 3);
    assert!(statuses[0]
        .2
        .as_deref()
        .unwrap_or_default()
        .contains("database error"));
    assert_eq!((statuses[1].0.as_str(), statuses[1].1), ("applied", 1));
    let emails: Vec<String> = db
        .read(|c| {
            members::table
                .filter(members::workspace_id.eq(&ws))
                .select(members::email)
                .load(c)
                .map_err(DbError::from)
        })
        .unwrap();
    assert_eq!(
        emails,
        ["healthy@example.com"],
        "the failed apply left nothing behind"
    );
}

#[test]
fn a_failing_event_is_retried_then_parked_without_blocking_others_sqlite() {
    a_failing_event_is_retried_then_parked_without_blocking_others(Backend::Sqlite)
}

#[test]
fn a_failing_event_is_retried_then_parked_without_blocking_others_postgres() {
    a_failing_event_is_retried_then_parked_without_blocking_others(Backend::Postgres)
}

async fn a_stale_update_after_delete_does_not_resurrect(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    let user = |state: &str, minute: u32| {
        dir.user(
            "directory_user_sam",
            "idp-sam",
            Some("sam@example.com"),
            "Sam",
            state,
            &at(minute),
        )
    };
    app.deliver(&[event("dsync.user.created", user("active", 1), &at(1))])
        .await;
    app.deliver(&[event("dsync.user.deleted", user("active", 3), &at(3))])
        .await;
    let gone = app.member(&ws, "sam@example.com").await.unwrap();
    assert_eq!(gone["status"], "deprovisioned");
    // The broker retries an older update 31 s late.
    let late = event("dsync.user.updated", user("active", 2), &at(2));
    app.deliver(std::slice::from_ref(&late)).await;
    assert_eq!(app.member(&ws, "sam@example.com").await.unwrap(), gone);
    assert_eq!(
        app.deliveries(late["id"].as_str().unwrap()).await[0]["status"],
        "applied"
    );
}

/// Rule 13: a downgrade below growth suspends application: events are skipped, members stay as they are.
async fn a_downgraded_workspace_keeps_its_members_and_skips_events(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    let user = |state: &str, minute: u32| {
        dir.user(
            "directory_user_ada",
            "idp-ada",
            Some("ada@example.com"),
            "Ada",
            state,
            &at(minute),
        )
    };
    app.deliver(&[event("dsync.user.created", user("active", 1), &at(1))])
        .await;
    let before = app.member(&ws, "ada@example.com").await.unwrap();
    assert_eq!(before["status"], "active");
    let (status, body) = app
        .op(
            reqwest::Method::PATCH,
            &format!("/api/v1/workspaces/{ws}"),
            Some(serde_json::json!({ "plan": "starter" })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let deleted = event("dsync.user.deleted", user("inactive", 2), &at(2));
    app.deliver(std::slice::from_ref(&deleted)).await;
    let delivery = &app.deliveries(deleted["id"].as_str().unwrap()).await[0];
    assert_eq!(delivery["status"], "skipped", "{delivery}");
    assert!(
        delivery["reason"].as_str().unwrap().contains("starter"),
        "{delivery}"
    );
    assert_eq!(app.member(&ws, "ada@example.com").await.unwrap(), before);
}

async fn a_returning_user_with_a_new_id_is_matched_by_idp_id(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    let old = |state: &str, minute: u32| {
        dir.user(
            "directory_user_old",
            "idp-rita",
            Some("rita@example.com"),
            "Rita",
            state,
            &at(minute),
        )
    };
    app.deliver(&[
        event("dsync.user.created", old("active", 1), &at(1)),
        event("dsync.user.deleted", old("inactive", 2), &at(2)),
    ])
    .await;
    let before = app.member(&ws, "rita@example.com").await.unwrap();
    assert_eq!(before["status"], "deprovisioned");
    // She comes back under a new broker id and a changed email.
    let new = dir.user(
        "directory_user_new",
        "idp-rita",
        Some("rita.m@example.com"),
        "Rita",
        "active",
        &at(10),
    );
    app.deliver(&[event("dsync.user.created", new, &at(10))])
        .await;
    let members = app.members(&ws).await;
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["id"], before["id"]);
    assert_eq!(members[0]["email"], "rita.m@example.com");
    assert_eq!(members[0]["status"], "active");
    assert_eq!(members[0]["directory_user_id"], "directory_user_new");
    // The old record's late events no longer touch her.
    app.deliver(&[event("dsync.user.deleted", old("inactive", 3), &at(3))])
        .await;
    assert_eq!(
        app.member(&ws, "rita.m@example.com").await.unwrap()["status"],
        "active"
    );
}

async fn events_for_workspaces_that_do_not_qualify_are_skipped(app: TestApp) {
    let starter = TestDirectory::new();
    let ws = app
        .create_workspace(&starter.organization_id, "starter")
        .await;
    let off = TestDirectory::new();
    let off_ws = app.create_workspace(&off.organization_id, "growth").await;
    let nobody = TestDirectory::new();
    let make = |dir: &TestDirectory| {
        event(
            "dsync.user.created",
            dir.user(
                "directory_user_x",
                "idp-x",
                Some("x@example.com"),
                "X",
                "active",
                &at(1),
            ),
            &at(1),
        )
    };
    let (a, b, c) = (make(&starter), make(&off), make(&nobody));
    app.deliver(&[a.clone(), b.clone(), c.clone()]).await;
    for (e, why) in [
        (&a, "plan starter"),
        (&b, "directory sync is off"),
        (&c, "no workspace"),
    ] {
        let d = app.deliveries(e["id"].as_str().unwrap()).await;
        assert_eq!(d[0]["status"], "skipped", "{d:?}");
        assert!(d[0]["reason"].as_str().unwrap().contains(why), "{d:?}");
    }
    assert!(app.members(&ws).await.is_empty());
    assert!(app.members(&off_ws).await.is_empty());

    // Once the workspace qualifies, an operator can send the skipped event through again.
    let (status, _) = app
        .op(
            Method::PATCH,
            &format!("/api/v1/workspaces/{ws}"),
            Some(serde_json::json!({"plan": "growth"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.set_sync(&ws, true).await;
    let delivery = app.deliveries(a["id"].as_str().unwrap()).await[0]["id"]
        .as_i64()
        .unwrap();
    let (status, body) = app
        .op(
            Method::POST,
            &format!("/api/v1/events/{delivery}/retry"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    app.wait_applied().await;
    assert_eq!(
        app.member(&ws, "x@example.com").await.unwrap()["status"],
        "active"
    );
    let (status, body) = app
        .op(
            Method::POST,
            &format!("/api/v1/events/{delivery}/retry"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "not_retryable");
}

async fn an_email_change_onto_another_member_is_a_conflict(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    let kim = |email: &str, minute: u32| {
        dir.user(
            "directory_user_kim",
            "idp-kim",
            Some(email),
            "Kim",
            "active",
            &at(minute),
        )
    };
    let lee = dir.user(
        "directory_user_lee",
        "idp-lee",
        Some("lee@example.com"),
        "Lee",
        "active",
        &at(1),
    );
    app.deliver(&[
        event("dsync.user.created", kim("kim@example.com", 1), &at(1)),
        event("dsync.user.created", lee, &at(1)),
    ])
    .await;
    let clash = event("dsync.user.updated", kim("LEE@example.com", 2), &at(2));
    app.deliver(std::slice::from_ref(&clash)).await;
    let delivery = &app.deliveries(clash["id"].as_str().unwrap()).await[0];
    assert_eq!(delivery["status"], "conflict");
    assert!(delivery["reason"]
        .as_str()
        .unwrap()
        .contains("LEE@example.com"));
    let members = app.members(&ws).await;
    assert_eq!(members.len(), 2);
    assert!(
        app.member(&ws, "kim@example.com").await.is_some(),
        "Kim keeps her email"
    );
    let conflicts: i64 = app
        .db
        .read(|c| {
            rollcall::db::schema::audit_log::table
                .filter(rollcall::db::schema::audit_log::action.eq("member.email_conflict"))
                .count()
                .get_result(c)
                .map_err(DbError::from)
        })
        .unwrap();
    assert_eq!(conflicts, 1);
}

async fn a_manual_member_is_adopted_by_email(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app
        .create_workspace(&dir.organization_id, "enterprise")
        .await;
    let (status, manual) = app
        .op(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/members"),
            Some(serde_json::json!({"email": "Noor@Example.com", "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{manual}");
    app.set_sync(&ws, true).await;
    app.deliver(&[event(
        "dsync.user.created",
        dir.user(
            "directory_user_noor",
            "idp-noor",
            Some("noor@example.com"),
            "Noor",
            "active",
            &at(1),
        ),
        &at(1),
    )])
    .await;
    let adopted = app.member(&ws, "noor@example.com").await.unwrap();
    assert_eq!(adopted["id"], manual["id"]);
    assert_eq!(adopted["managed_by"], "directory");
    assert_eq!(adopted["role"], "admin", "adoption keeps the role");
    assert_eq!(adopted["email"], "noor@example.com");
}

async fn a_deleted_directory_deprovisions_its_members(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    let users: Vec<Value> = (0..3)
        .map(|i| {
            let id = format!("directory_user_{i}");
            event(
                "dsync.user.created",
                dir.user(
                    &id,
                    &id,
                    Some(&format!("u{i}@example.com")),
                    "U",
                    "active",
                    &at(1),
                ),
                &at(1),
            )
        })
        .collect();
    app.deliver(&[event("dsync.activated", dir.object(&at(0)), &at(0))])
        .await;
    app.deliver(&users).await;
    let (_, sync) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-sync"),
            None,
        )
        .await;
    assert_eq!(sync["directories"][0]["id"], dir.id.as_str());
    assert_eq!(sync["directories"][0]["type"], "okta scim v2.0");
    app.deliver(&[event("dsync.deleted", dir.object(&at(5)), &at(5))])
        .await;
    let members = app.members(&ws).await;
    assert_eq!(members.len(), 3);
    assert!(
        members.iter().all(|m| m["status"] == "deprovisioned"),
        "{members:?}"
    );
    // A late user event for the deleted directory provisions nobody.
    let late = event(
        "dsync.user.created",
        dir.user(
            "directory_user_9",
            "u9",
            Some("u9@example.com"),
            "U",
            "active",
            &at(6),
        ),
        &at(6),
    );
    app.deliver(&[late]).await;
    assert_eq!(
        app.member(&ws, "u9@example.com").await.unwrap()["status"],
        "deprovisioned"
    );
    let (_, sync) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-sync"),
            None,
        )
        .await;
    assert_eq!(sync["directories"][0]["state"], "deleted");
}

async fn a_user_without_email_provisions_nobody_until_one_arrives(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    let user = |email: Option<&str>, minute: u32| {
        dir.user(
            "directory_user_q",
            "idp-q",
            email,
            "Quinn",
            "active",
            &at(minute),
        )
    };
    app.deliver(&[event("dsync.user.created", user(None, 1), &at(1))])
        .await;
    assert!(app.members(&ws).await.is_empty());
    app.deliver(&[event(
        "dsync.user.updated",
        user(Some("quinn@example.com"), 2),
        &at(2),
    )])
    .await;
    assert_eq!(
        app.member(&ws, "quinn@example.com").await.unwrap()["status"],
        "active"
    );
}

async fn a_membership_event_for_unseen_objects_creates_them(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    let user = dir.user(
        "directory_user_m",
        "idp-m",
        Some("m@example.com"),
        "Mo",
        "active",
        &at(1),
    );
    let group = dir.group("directory_group_m", "Design", &at(1));
    let added = event(
        "dsync.group.user_added",
        dir.membership(&user, &group),
        &at(2),
    );
    let removed_earlier = event(
        "dsync.group.user_removed",
        dir.membership(&user, &group),
        &at(1),
    );
    app.deliver(&[added, removed_earlier]).await;
    assert_eq!(
        app.member(&ws, "m@example.com").await.unwrap()["status"],
        "active"
    );
    let is_member: bool = app
        .db
        .read(|c| {
            directory_group_memberships::table
                .find(("directory_group_m", "directory_user_m"))
                .select(directory_group_memberships::is_member)
                .first(c)
                .map_err(DbError::from)
        })
        .unwrap();
    assert!(is_member, "the older removal does not undo the newer add");
}

crate::on_both_backends!(
    a_stale_update_after_delete_does_not_resurrect,
    a_downgraded_workspace_keeps_its_members_and_skips_events,
    a_returning_user_with_a_new_id_is_matched_by_idp_id,
    events_for_workspaces_that_do_not_qualify_are_skipped,
    an_email_change_onto_another_member_is_a_conflict,
    a_manual_member_is_adopted_by_email,
    a_deleted_directory_deprovisions_its_members,
    a_user_without_email_provisions_nobody_until_one_arrives,
    a_membership_event_for_unseen_objects_creates_them,
);
