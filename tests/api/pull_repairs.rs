//! What a pull exists to repair, and what a held pull must leave alone (rules 1, 14, 15; rule 7 for
//! runs a stopped process left behind).

use crate::broker::{at, event, TestDirectory};
use crate::full_pull::{
    attach, broker, listing, map_roles, memberships_of, pull, pulled_once, team_following,
    team_roster, GUARD,
};
use crate::helpers::{spawn_app_on, Backend, TestApp, TestDatabase};
use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use rollcall::audit::Cause;
use rollcall::broker::UsersWithGroups;
use rollcall::db::models::WorkspaceRow;
use rollcall::db::schema::{sync_runs, workspaces};
use rollcall::db::DbError;
use rollcall::dev_broker::Faults;
use rollcall::directory_sync::reconcile::{DeprovisionGuard, DirectoryPull};
use rollcall::directory_sync::{with_store, ApplyContext, ApplyError};
use rollcall::workos::timestamp;
use serde_json::{json, Value};
use std::collections::BTreeSet;

crate::on_both_backends!(
    a_returning_user_takes_over_the_member_by_webhook_and_pull,
    a_returning_user_takes_over_the_member_by_the_pull_alone,
    a_held_pull_destroys_nothing,
    the_guard_counts_only_the_members_the_directory_manages,
    a_pull_stops_when_directory_sync_is_turned_off,
);

mod startup {
    use super::runs_left_unfinished_are_ended_at_start_up;
    crate::on_both_backends!(backend: runs_left_unfinished_are_ended_at_start_up);
}

/// A listing of exactly these users, groups and `(group, user)` memberships.
fn listed(users: &[&Value], groups: &[&Value], memberships: &[(&str, &str)]) -> UsersWithGroups {
    UsersWithGroups {
        users: users
            .iter()
            .map(|u| serde_json::from_value((*u).clone()).unwrap())
            .collect(),
        groups: groups
            .iter()
            .map(|g| serde_json::from_value((*g).clone()).unwrap())
            .collect(),
        memberships: memberships
            .iter()
            .map(|(g, u)| (g.to_string(), u.to_string()))
            .collect(),
        requests: 0,
        from_user_groups: true,
        unreadable: Vec::new(),
    }
}

/// A user A in a linked, mapped group; A's deletion is lost and B arrives with a new broker id and the
/// same `idp_id` and email. With `webhook`, B's creation and membership arrive as webhooks; without, the
/// pull alone brings B.
async fn returning_user(app: TestApp, webhook: bool) {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    let group = dir.group("directory_group_eng", "Engineering", &at(1));
    let user = |id: &str, minute| {
        let email = Some("returning@example.com");
        dir.user(id, "idp_returning", email, "Ret", "active", &at(minute))
    };
    let (a, b) = (user("directory_user_a", 1), user("directory_user_b", 5));
    app.deliver(&[
        event("dsync.activated", dir.object(&at(0)), &at(0)),
        event("dsync.group.created", group.clone(), &at(1)),
        event("dsync.user.created", a.clone(), &at(1)),
        event("dsync.group.user_added", dir.membership(&a, &group), &at(2)),
    ])
    .await;
    let team = team_following(&app, &ws, "Engineering", &["directory_group_eng".into()]).await;
    map_roles(&app, &ws, &[("directory_group_eng".into(), "admin")]).await;
    let before = app.member(&ws, "returning@example.com").await.unwrap();
    assert_eq!(before["role"], "admin");
    if webhook {
        app.deliver(&[
            event("dsync.user.created", b.clone(), &at(5)),
            event("dsync.group.user_added", dir.membership(&b, &group), &at(6)),
        ])
        .await;
    }
    let listing = listed(
        &[&b],
        &[&group],
        &[("directory_group_eng", "directory_user_b")],
    );
    pull(&app, &ws, &dir.id, &listing, timestamp::now(), GUARD);

    let members = app.members(&ws).await;
    assert_eq!(members.len(), 1, "one person, one member: {members:?}");
    let member = &members[0];
    assert_eq!(member["id"], before["id"], "the same member is kept");
    assert_eq!(
        (
            &member["status"],
            &member["directory_user_id"],
            &member["role"]
        ),
        (
            &json!("active"),
            &json!("directory_user_b"),
            &json!("admin")
        )
    );
    assert_eq!(
        team_roster(&app, &ws, &team).await,
        BTreeSet::from([("returning@example.com".into(), "active".into())])
    );
}

async fn a_returning_user_takes_over_the_member_by_webhook_and_pull(app: TestApp) {
    returning_user(app, true).await
}

async fn a_returning_user_takes_over_the_member_by_the_pull_alone(app: TestApp) {
    returning_user(app, false).await
}

/// Everything a pull could destroy, as the API shows it.
async fn destructible(app: &TestApp, ws: &str, directory_id: &str, team: &str) -> Value {
    let get = |path: String| async move {
        let (status, body) = app.op(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    };
    let members: BTreeSet<(String, String, String)> = app
        .members(ws)
        .await
        .iter()
        .map(|m| {
            let field = |f: &str| m[f].as_str().unwrap_or_default().to_string();
            (field("email"), field("status"), field("role"))
        })
        .collect();
    json!({
        "members": members,
        "memberships": memberships_of(app, directory_id),
        "groups": get(format!("/api/v1/workspaces/{ws}/directory-groups?limit=100")).await["data"],
        "links": get(format!("/api/v1/workspaces/{ws}/teams/{team}/directory-groups")).await,
        "mappings": get(format!("/api/v1/workspaces/{ws}/role-mappings")).await,
        "team": team_roster(app, ws, team).await,
    })
}

async fn a_held_pull_destroys_nothing(app: TestApp) {
    let broker = broker(30, None, Faults::default()).await;
    let ws = attach(&app, &broker).await;
    let full = listing(&broker).await;
    pull(
        &app,
        &ws,
        &broker.directory_id,
        &full,
        timestamp::now(),
        GUARD,
    );
    let groups: Vec<String> = full.groups.iter().map(|g| g.id.to_string()).collect();
    let team = team_following(&app, &ws, "Linked", &groups[..2]).await;
    map_roles(&app, &ws, &[(groups[0].clone(), "builder")]).await;
    let before = destructible(&app, &ws, &broker.directory_id, &team).await;
    let active = before["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m[1] == "active")
        .count();
    assert!(active >= 10 && !before["team"].as_array().unwrap().is_empty());

    // The broker's listing loses every user and every group.
    let empty = listed(&[], &[], &[]);
    let held = pull(
        &app,
        &ws,
        &broker.directory_id,
        &empty,
        timestamp::now(),
        GUARD,
    );
    assert_eq!(held.held, active);
    assert_eq!(held.held_users_deleted, full.users.len());
    assert_eq!(held.held_groups_deleted, full.groups.len());
    assert_eq!(held.held_memberships_removed, full.memberships.len());
    assert_eq!(
        (
            held.deprovisioned,
            held.users_deleted,
            held.groups_deleted,
            held.memberships_removed
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        destructible(&app, &ws, &broker.directory_id, &team).await,
        before,
        "a held pull changed what it holds"
    );

    // Forced, it all goes.
    let force = DeprovisionGuard {
        force: true,
        ..GUARD
    };
    let forced = pull(
        &app,
        &ws,
        &broker.directory_id,
        &empty,
        timestamp::now(),
        force,
    );
    assert_eq!(
        (forced.deprovisioned, forced.groups_deleted, forced.held),
        (active, full.groups.len(), 0)
    );
    let after = destructible(&app, &ws, &broker.directory_id, &team).await;
    assert_eq!(after["memberships"], json!([]));
    assert_eq!(after["links"]["data"], json!([]));
    assert_eq!(after["team"], json!([]));
}

async fn the_guard_counts_only_the_members_the_directory_manages(app: TestApp) {
    let broker = broker(30, None, Faults::default()).await;
    let ws = pulled_once(&app, &broker).await;
    // The workspace's other directory manages 200 more members.
    let other = TestDirectory {
        tag: "other".into(),
        id: "directory_other".into(),
        organization_id: "org_dev".into(),
    };
    app.deliver(&[event("dsync.activated", other.object(&at(0)), &at(0))])
        .await;
    let users: Vec<Value> = (0..200)
        .map(|i| {
            let id = format!("directory_user_other_{i}");
            let email = format!("other{i}@example.com");
            other.user(&id, &id, Some(&email), "Oth", "active", &at(1))
        })
        .collect();
    let users: Vec<&Value> = users.iter().collect();
    pull(
        &app,
        &ws,
        &other.id,
        &listed(&users, &[], &[]),
        timestamp::now(),
        GUARD,
    );
    assert!(app.members(&ws).await.len() > 200);

    // The first directory's listing comes back empty: all of its members would go.
    let held = pull(
        &app,
        &ws,
        &broker.directory_id,
        &listed(&[], &[], &[]),
        timestamp::now(),
        GUARD,
    );
    assert!(held.held >= 10, "{held:?}");
    assert_eq!(held.deprovisioned, 0);
}

/// The pull's context for the workspace as it is now.
fn context(conn: &mut rollcall::db::DbConnection, ws: &str) -> QueryResult<ApplyContext> {
    let workspace: WorkspaceRow = workspaces::table
        .find(ws)
        .select(WorkspaceRow::as_select())
        .first(conn)?;
    Ok(ApplyContext {
        workspace,
        cause: Cause::SyncRun("run_test".into()),
        event_at: timestamp::now(),
    })
}

async fn a_pull_stops_when_directory_sync_is_turned_off(app: TestApp) {
    let broker = broker(30, None, Faults::default()).await;
    let ws = pulled_once(&app, &broker).await;
    let active = |members: &[Value]| members.iter().filter(|m| m["status"] == "active").count();
    let before = active(&app.members(&ws).await);
    // A forced pull of an empty listing begins; its listing ends after sync was turned off.
    let force = DeprovisionGuard {
        force: true,
        ..GUARD
    };
    let db_err = |ApplyError::Db(e)| DbError::from(e);
    let mut run = app
        .db
        .write(|conn| {
            let ctx = context(conn, &ws)?;
            with_store(conn, |store| {
                DirectoryPull::begin(store, &ctx, &broker.directory_id.as_str().into(), force)
            })
            .map_err(db_err)
        })
        .unwrap();
    app.set_sync(&ws, false).await;
    app.db
        .write(|conn| {
            with_store(conn, |store| {
                run.decide(store)?;
                while run.remove_unlisted_memberships(store, 100)? {}
                while run.finish(store, 500)? {}
                while run.reconcile_teams(store, 500)? {}
                Ok(())
            })
            .map_err(db_err)
        })
        .unwrap();
    assert!(
        run.stopped().is_some_and(|why| why.contains("off")),
        "{:?}",
        run.stopped()
    );
    assert_eq!((run.counts.deprovisioned, run.counts.users_deleted), (0, 0));
    assert_eq!(active(&app.members(&ws).await), before);
}

async fn runs_left_unfinished_are_ended_at_start_up(backend: Backend) {
    let database = TestDatabase::new(backend);
    let db = database.open();
    let long_ago = timestamp::now() - chrono::TimeDelta::minutes(5);
    for (id, status) in [("run_was_queued", "queued"), ("run_was_running", "running")] {
        db.write(|c| {
            diesel::insert_into(sync_runs::table)
                .values((
                    sync_runs::id.eq(id),
                    sync_runs::directory_id.eq(format!("directory_{id}")),
                    sync_runs::trigger.eq("scheduled"),
                    sync_runs::force.eq(false),
                    sync_runs::status.eq(status),
                    sync_runs::requests.eq(0),
                    sync_runs::created_at.eq(long_ago),
                    sync_runs::phase.eq(status),
                    sync_runs::users_listed.eq(0),
                ))
                .execute(c)
                .map_err(DbError::from)
        })
        .unwrap();
    }
    drop(db);
    let app = spawn_app_on(database.target.clone(), |_| {}).await;
    for id in ["run_was_queued", "run_was_running"] {
        let (status, run) = app
            .op(Method::GET, &format!("/api/v1/sync-runs/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        assert_eq!(run["status"], "failed", "{run}");
        assert!(
            run["error"].as_str().unwrap().starts_with("interrupted"),
            "{run}"
        );
    }
}
