//! The full pull's apply step against a dev broker over HTTP: rules 14 and 15.

use crate::broker::{at, event};
use crate::helpers::TestApp;
use diesel::prelude::*;
use reqwest::Method;
use rollcall::audit::Cause;
use rollcall::broker::{BrokerClient, BrokerSettings, UsersWithGroups};
use rollcall::db::models::WorkspaceRow;
use rollcall::db::schema::workspaces;
use rollcall::db::DbError;
use rollcall::dev_broker::{
    DevBroker, DevBrokerConfig, DevBrokerHandle, DirectorySource, Faults, GenerateOptions,
    WebhookTarget,
};
use rollcall::directory_sync::reconcile::{
    reconcile_directory, DeprovisionGuard, DirectoryListing, ReconcileCounts,
};
use rollcall::directory_sync::{ApplyContext, ApplyError};
use rollcall::workos::timestamp;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

const GUARD: DeprovisionGuard = DeprovisionGuard {
    max_share: 0.2,
    min_count: 10,
    force: false,
};

async fn broker(users: u32, webhook: Option<WebhookTarget>, faults: Faults) -> DevBrokerHandle {
    DevBroker::start(DevBrokerConfig {
        source: DirectorySource::Generate(GenerateOptions {
            users,
            groups: 8,
            memberships_per_user: 2.0,
            inactive_share: 0.1,
        }),
        webhook,
        faults,
        ..DevBrokerConfig::default()
    })
    .await
    .expect("the dev broker starts")
}

/// A synced workspace for the dev broker's organization, its directory attached by `dsync.activated`.
async fn attach(app: &TestApp, broker: &DevBrokerHandle) -> String {
    let ws = app.synced_workspace("org_dev").await;
    let directory = json!({"object": "directory", "id": broker.directory_id, "organization_id": "org_dev",
        "type": "okta scim v2.0", "state": "active", "name": "Dev", "created_at": at(0), "updated_at": at(0)});
    app.deliver(&[event("dsync.activated", directory, &at(0))])
        .await;
    ws
}

async fn listing(broker: &DevBrokerHandle) -> UsersWithGroups {
    let client = BrokerClient::new(BrokerSettings {
        base_url: broker.base_url.clone(),
        api_key: broker.api_key.clone(),
        user_listing_rate_per_directory: 0.0,
        ..BrokerSettings::default()
    })
    .unwrap();
    client
        .users_with_groups(&broker.directory_id)
        .await
        .expect("a complete listing")
}

/// Applies a listing taken at `started_at`.
fn pull(
    app: &TestApp,
    ws: &str,
    directory_id: &str,
    listed: &UsersWithGroups,
    started_at: timestamp::Timestamp,
    guard: DeprovisionGuard,
) -> ReconcileCounts {
    app.db
        .write(|conn| {
            let workspace: WorkspaceRow = workspaces::table
                .find(ws)
                .select(WorkspaceRow::as_select())
                .first(conn)?;
            let ctx = ApplyContext {
                workspace,
                cause: Cause::SyncRun("run_test".into()),
                event_at: started_at,
            };
            let listing = DirectoryListing {
                directory_id,
                users: &listed.users,
                groups: &listed.groups,
                memberships: &listed.memberships,
            };
            reconcile_directory(conn, &ctx, &listing, guard)
                .map_err(|ApplyError::Db(e)| DbError::from(e))
        })
        .unwrap()
}

/// The emails of active members, and of active users at the broker: they must be the same.
async fn active_members_and_truth(
    app: &TestApp,
    ws: &str,
    broker: &DevBrokerHandle,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let members: BTreeSet<String> = app
        .members(ws)
        .await
        .iter()
        .filter(|m| m["status"] == "active")
        .map(|m| m["email"].as_str().unwrap().to_lowercase())
        .collect();
    let truth: BTreeSet<String> = broker
        .truth()
        .users
        .iter()
        .filter(|u| u.state == "active")
        .filter_map(|u| Some(u.email.clone()?.to_lowercase()))
        .collect();
    (members, truth)
}

/// The directory's memberships as Rollcall holds them.
fn memberships_of(app: &TestApp, directory_id: &str) -> BTreeSet<(String, String)> {
    use rollcall::db::schema::directory_group_memberships as m;
    app.db
        .read(|c| {
            m::table
                .filter(m::directory_id.eq(directory_id))
                .filter(m::is_member.eq(true))
                .select((m::group_id, m::user_id))
                .load::<(String, String)>(c)
                .map_err(DbError::from)
        })
        .unwrap()
        .into_iter()
        .collect()
}

async fn a_first_pull_brings_the_broker_directory_in(app: TestApp) {
    let broker = broker(60, None, Faults::default()).await;
    let ws = attach(&app, &broker).await;
    let listed = listing(&broker).await;
    let counts = pull(
        &app,
        &ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        GUARD,
    );
    assert_eq!(counts.users_created, 60);
    assert_eq!(counts.groups_created, 8);
    assert_eq!(counts.memberships_added, listed.memberships.len());
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert!(!members.is_empty());
    assert_eq!(members, truth);
    assert_eq!(
        memberships_of(&app, &broker.directory_id),
        broker.truth().memberships
    );
    let (_, groups) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-groups"),
            None,
        )
        .await;
    assert_eq!(groups["data"].as_array().unwrap().len(), 8);
    // A second pull with nothing changed changes nothing.
    let again = pull(
        &app,
        &ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        GUARD,
    );
    assert_eq!(
        (
            again.users_created,
            again.users_updated,
            again.memberships_added,
            again.users_deleted
        ),
        (0, 0, 0, 0)
    );
}

async fn lossy_webhooks_then_one_pull_match_the_broker(app: TestApp) {
    let faults = Faults {
        drop: 0.3,
        duplicate: 0.1,
        reorder: true,
        ..Faults::default()
    };
    let target = WebhookTarget {
        url: format!("{}/webhooks/workos", app.address),
        secret: crate::helpers::SECRET.into(),
    };
    let broker = broker(40, Some(target), faults).await;
    let ws = attach(&app, &broker).await;
    pull(
        &app,
        &ws,
        &broker.directory_id,
        &listing(&broker).await,
        timestamp::now(),
        GUARD,
    );
    broker.random_changes(60);
    assert!(
        broker.settle(Duration::from_secs(20)).await,
        "the dev broker delivered everything it meant to"
    );
    app.wait_applied().await;
    let sent = broker.event_summary();
    assert!(sent.dropped > 0 && sent.duplicated > 0, "{sent:?}");
    let (before_pull, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert!(
        before_pull != truth
            || memberships_of(&app, &broker.directory_id) != broker.truth().memberships,
        "with a third of the webhooks dropped, Rollcall should have drifted before the pull"
    );
    let listed = listing(&broker).await;
    pull(
        &app,
        &ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        DeprovisionGuard {
            force: true,
            ..GUARD
        },
    );
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert_eq!(members, truth);
    assert_eq!(
        memberships_of(&app, &broker.directory_id),
        broker.truth().memberships
    );
    let (_, failed) = app
        .op(Method::GET, "/api/v1/events?status=failed", None)
        .await;
    assert_eq!(failed["data"], json!([]));
}

async fn an_empty_listing_of_a_populated_directory_is_held(app: TestApp) {
    let broker = broker(30, None, Faults::default()).await;
    let ws = attach(&app, &broker).await;
    let listed = listing(&broker).await;
    pull(
        &app,
        &ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        GUARD,
    );
    let active_before = app
        .members(&ws)
        .await
        .iter()
        .filter(|m| m["status"] == "active")
        .count();
    assert!(active_before >= 10);
    let empty = UsersWithGroups {
        users: Vec::new(),
        groups: listed.groups.clone(),
        memberships: BTreeSet::new(),
        requests: 0,
        from_user_groups: false,
    };
    let held = pull(
        &app,
        &ws,
        &broker.directory_id,
        &empty,
        timestamp::now(),
        GUARD,
    );
    assert_eq!(held.held, active_before);
    assert_eq!((held.deprovisioned, held.users_deleted), (0, 0));
    assert_eq!(
        app.members(&ws)
            .await
            .iter()
            .filter(|m| m["status"] == "active")
            .count(),
        active_before
    );
    let forced = pull(
        &app,
        &ws,
        &broker.directory_id,
        &empty,
        timestamp::now(),
        DeprovisionGuard {
            force: true,
            ..GUARD
        },
    );
    assert_eq!(forced.deprovisioned, active_before);
    assert!(app
        .members(&ws)
        .await
        .iter()
        .all(|m| m["status"] == "deprovisioned"));
}

async fn a_webhook_applied_mid_pull_wins(app: TestApp) {
    let broker = broker(20, None, Faults::default()).await;
    let ws = attach(&app, &broker).await;
    pull(
        &app,
        &ws,
        &broker.directory_id,
        &listing(&broker).await,
        timestamp::now(),
        GUARD,
    );
    // The pull begins and lists; meanwhile a webhook brings a user the listing does not have.
    let started_at = timestamp::now();
    let listed = listing(&broker).await;
    std::thread::sleep(Duration::from_millis(5));
    let newcomer = json!({"object": "directory_user", "id": "directory_user_midpull", "directory_id": broker.directory_id,
        "organization_id": "org_dev", "idp_id": "midpull", "email": "midpull@example.com", "first_name": "Mid",
        "last_name": "Pull", "state": "active", "created_at": at(0), "updated_at": at(0)});
    app.deliver(&[event("dsync.user.created", newcomer, &at(0))])
        .await;
    let counts = pull(&app, &ws, &broker.directory_id, &listed, started_at, GUARD);
    assert_eq!(counts.users_deleted, 0);
    assert_eq!(
        app.member(&ws, "midpull@example.com").await.unwrap()["status"],
        "active"
    );
    // The next pull, which began after it, removes what the broker does not have.
    let later = pull(
        &app,
        &ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        GUARD,
    );
    assert_eq!(later.users_deleted, 1);
    assert_eq!(
        app.member(&ws, "midpull@example.com").await.unwrap()["status"],
        "deprovisioned"
    );
}

crate::on_both_backends!(
    a_first_pull_brings_the_broker_directory_in,
    lossy_webhooks_then_one_pull_match_the_broker,
    an_empty_listing_of_a_populated_directory_is_held,
    a_webhook_applied_mid_pull_wins,
);

/// Starts a resync through the API and waits for the run to end; returns the run.
async fn resync(app: &TestApp, directory_id: &str, force: bool) -> serde_json::Value {
    let (status, started) = app
        .op(
            Method::POST,
            &format!("/api/v1/directories/{directory_id}/resync?force={force}"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{started}");
    let run = started["run_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = app
            .op(Method::GET, &format!("/api/v1/sync-runs/{run}"), None)
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        if !matches!(body["status"].as_str(), Some("queued" | "running")) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not end: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn operators_resync_a_directory_through_the_api(backend: crate::helpers::Backend) {
    let broker = broker(30, None, Faults::default()).await;
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.workos_api_key = Some(broker.api_key.clone());
        s.workos_api_base = broker.base_url.clone();
    })
    .await;
    let ws = attach(&app, &broker).await;
    let run = resync(&app, &broker.directory_id, false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "on_demand");
    assert_eq!(run["counts"]["users_created"], 30);
    assert!(run["progress"]["requests"].as_i64().unwrap() >= 2);
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert_eq!(members, truth);
    let (_, sync) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-sync"),
            None,
        )
        .await;
    assert!(
        sync["directories"][0]["last_synced_at"].is_string(),
        "{sync}"
    );
    // A listing that keeps failing ends the run failed, and changes nothing.
    broker
        .set_faults(&rollcall::dev_broker::FaultsUpdate {
            rate_500: Some(1.0),
            ..Default::default()
        })
        .expect("valid faults");
    let audit_before = crate::helpers::audit_entries(&app.db);
    let failed = resync(&app, &broker.directory_id, false).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("listing"),
        "{failed}"
    );
    assert_eq!(crate::helpers::audit_entries(&app.db), audit_before);
    assert_eq!(active_members_and_truth(&app, &ws, &broker).await.0, truth);
    let (status, body) = app
        .op(
            Method::POST,
            "/api/v1/directories/directory_unknown/resync",
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (reqwest::StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = app
        .op(Method::GET, "/api/v1/sync-runs/run_unknown", None)
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_resync_a_directory_through_the_api_sqlite() {
    operators_resync_a_directory_through_the_api(crate::helpers::Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_resync_a_directory_through_the_api_postgres() {
    operators_resync_a_directory_through_the_api(crate::helpers::Backend::Postgres).await
}

async fn a_directory_no_webhook_announced_is_found_by_the_pull(backend: crate::helpers::Backend) {
    let broker = broker(12, None, Faults::default()).await;
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.workos_api_key = Some(broker.api_key.clone());
        s.workos_api_base = broker.base_url.clone();
    })
    .await;
    let ws = app.synced_workspace("org_dev").await;
    let run = resync(&app, &broker.directory_id, false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (_, sync) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-sync"),
            None,
        )
        .await;
    assert_eq!(
        sync["directories"][0]["id"],
        broker.directory_id.as_str(),
        "{sync}"
    );
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert_eq!(members, truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_no_webhook_announced_is_found_by_the_pull_sqlite() {
    a_directory_no_webhook_announced_is_found_by_the_pull(crate::helpers::Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_no_webhook_announced_is_found_by_the_pull_postgres() {
    a_directory_no_webhook_announced_is_found_by_the_pull(crate::helpers::Backend::Postgres).await
}

async fn resync_needs_a_broker_api_key(app: TestApp) {
    let (status, body) = app
        .op(Method::POST, "/api/v1/directories/directory_x/resync", None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (reqwest::StatusCode::CONFLICT, Some("broker_not_configured"))
    );
}

mod without_a_key {
    use super::*;
    crate::on_both_backends!(resync_needs_a_broker_api_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_never_pull_the_same_directory_at_once() {
    // 4 user listings a second keep each run busy for a few seconds: long enough to overlap.
    let broker = broker(250, None, Faults::default()).await;
    let point_at_broker = |s: &mut rollcall::config::Settings| {
        s.workos_api_key = Some(broker.api_key.clone());
        s.workos_api_base = broker.base_url.clone();
    };
    let first =
        crate::helpers::spawn_app_with(crate::helpers::Backend::Postgres, point_at_broker).await;
    let second = crate::helpers::spawn_app_on(first.db.target().clone(), point_at_broker).await;
    attach(&first, &broker).await;
    let (a, b) = tokio::join!(
        resync(&first, &broker.directory_id, false),
        resync(&second, &broker.directory_id, false)
    );
    let mut statuses = [
        a["status"].as_str().unwrap().to_string(),
        b["status"].as_str().unwrap().to_string(),
    ];
    statuses.sort();
    assert_eq!(statuses, ["failed", "succeeded"], "{a}\n{b}");
    let failed = if a["status"] == "failed" { &a } else { &b };
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("another Rollcall instance"),
        "{failed}"
    );
    // The lock goes with the run, not with the pooled connection it was taken on: each instance can pull
    // the directory again, one after the other.
    for app in [&first, &second, &first] {
        let run = resync(app, &broker.directory_id, false).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
}
