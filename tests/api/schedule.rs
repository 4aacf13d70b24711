//! Rule 16: full pulls that start on their own (the schedule, `dsync.activated`, turning directory sync
//! on), the list of runs, and `/metrics`.

use crate::broker::{at, event, TestDirectory};
use crate::helpers::{spawn_app_with, Backend, TestApp};
use reqwest::{Method, StatusCode};
use rollcall::config::Settings;
use rollcall::db::DbError;
use rollcall::dev_broker::{
    DevBroker, DevBrokerConfig, DevBrokerHandle, DirectorySource, Faults, GenerateOptions,
};
use rollcall::metrics::sample_value;
use rollcall::workos::events::Directory;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

crate::on_both_backends!(
    backend:
    the_schedule_pulls_every_qualifying_directory,
    an_activated_directory_is_pulled,
    turning_directory_sync_on_pulls_the_workspace_directories,
    only_qualifying_directories_are_scheduled,
    runs_are_listed_newest_first_by_directory,
    metrics_count_runs_broker_requests_429s_and_webhooks,
    a_stopped_applier_shows_in_readiness_and_the_backlog,
    an_activation_before_the_workspace_is_found_when_sync_turns_on,
    turning_sync_off_and_on_again_soon_pulls_once,
);

async fn broker(users: u32, groups: u32, faults: Faults) -> DevBrokerHandle {
    DevBroker::start(DevBrokerConfig {
        source: DirectorySource::Generate(GenerateOptions {
            users,
            groups,
            memberships_per_user: 1.5,
            inactive_share: 0.1,
        }),
        faults,
        ..DevBrokerConfig::default()
    })
    .await
    .expect("the dev broker starts")
}

/// A service pointed at the dev broker, pulling on schedule every `interval` (zero: never).
async fn app_for(backend: Backend, broker: &DevBrokerHandle, interval: Duration) -> TestApp {
    app_for_with(backend, broker, interval, |_| {}).await
}

/// As [`app_for`], with other settings changed by `adjust`.
async fn app_for_with(
    backend: Backend,
    broker: &DevBrokerHandle,
    interval: Duration,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let (key, base) = (broker.api_key.clone(), broker.base_url.clone());
    spawn_app_with(backend, move |s: &mut Settings| {
        s.workos_api_key = Some(key.into());
        s.workos_api_base = base;
        s.resync_interval = Some(interval);
        s.pull_on_activation = true;
        adjust(s);
    })
    .await
}

/// Records a directory as known to Rollcall, as a pull that found it in the broker's listing does.
fn know_directory(app: &TestApp, id: &str, organization_id: &str) {
    let directory = Directory {
        id: id.into(),
        organization_id: Some(organization_id.into()),
        directory_type: Some("okta scim v2.0".into()),
        name: Some("Dev".into()),
        state: Some("active".into()),
        created_at: serde_json::from_value(at(0).into()).unwrap(),
        updated_at: serde_json::from_value(at(0).into()).unwrap(),
    };
    app.db
        .write(|c| {
            rollcall::directory_sync::directories::attach_listed(c, &directory)
                .map_err(DbError::from)
        })
        .expect("the directory is recorded");
}

/// Runs of a directory, newest first.
async fn runs(app: &TestApp, directory_id: &str) -> Vec<Value> {
    let (status, body) = app
        .op(
            Method::GET,
            &format!("/api/v1/sync-runs?directory={directory_id}&limit=1000"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().expect("a list").clone()
}

/// Waits for a finished run of the directory with this trigger; returns it.
async fn finished_run(app: &TestApp, directory_id: &str, trigger: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = runs(app, directory_id).await.into_iter().find(|r| {
            r["trigger"] == trigger
                && ["succeeded", "failed", "held"].contains(&r["status"].as_str().unwrap_or(""))
        });
        if let Some(run) = found {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "no finished {trigger} run of {directory_id} within 60 s: {:?}",
            runs(app, directory_id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks for an operator's pull of the directory and waits until it ends; returns the run.
async fn resync(app: &TestApp, directory_id: &str) -> Value {
    let (status, body) = app
        .op(
            Method::POST,
            &format!("/api/v1/directories/{directory_id}/resync"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    finished_run(app, directory_id, "on_demand").await
}

/// The emails of the workspace's active members, and of the broker's active users.
async fn active_members_and_truth(
    app: &TestApp,
    ws: &str,
    broker: &DevBrokerHandle,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let members = app
        .members(ws)
        .await
        .iter()
        .filter(|m| m["status"] == "active")
        .map(|m| m["email"].as_str().unwrap().to_lowercase())
        .collect();
    let truth = broker
        .truth()
        .users
        .iter()
        .filter(|u| u.state == "active")
        .filter_map(|u| Some(u.email.clone()?.to_lowercase()))
        .collect();
    (members, truth)
}

async fn the_schedule_pulls_every_qualifying_directory(backend: Backend) {
    let broker = broker(40, 4, Faults::default()).await;
    let app = app_for(backend, &broker, Duration::from_secs(1)).await;
    let ws = app.synced_workspace("org_dev").await;
    know_directory(&app, &broker.directory_id, "org_dev");
    let run = finished_run(&app, &broker.directory_id, "scheduled").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["force"], false);
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert!(truth.len() > 20, "{}", truth.len());
    assert_eq!(members, truth);
    // The schedule may have pulled again since (nothing to create then): the first run created them all.
    let first = runs(&app, &broker.directory_id).await.pop().expect("a run");
    assert!(first["counts"]["users_created"].as_i64().unwrap() >= truth.len() as i64);
}

async fn an_activated_directory_is_pulled(backend: Backend) {
    let broker = broker(30, 3, Faults::default()).await;
    let app = app_for(backend, &broker, Duration::ZERO).await;
    let ws = app.synced_workspace("org_dev").await;
    // Turning sync on found the directory at the broker and pulled it; the activation pulls it again.
    finished_run(&app, &broker.directory_id, "sync_enabled").await;
    let directory = json!({"object": "directory", "id": broker.directory_id, "organization_id": "org_dev",
        "type": "okta scim v2.0", "state": "active", "name": "Dev", "created_at": at(0), "updated_at": at(0)});
    app.deliver(&[event("dsync.activated", directory, &at(0))])
        .await;
    let run = finished_run(&app, &broker.directory_id, "directory_activated").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert!(!truth.is_empty());
    assert_eq!(members, truth);
}

async fn turning_directory_sync_on_pulls_the_workspace_directories(backend: Backend) {
    let broker = broker(30, 3, Faults::default()).await;
    let app = app_for(backend, &broker, Duration::ZERO).await;
    let ws = app.create_workspace("org_dev", "growth").await;
    know_directory(&app, &broker.directory_id, "org_dev");
    assert!(app.members(&ws).await.is_empty());
    app.set_sync(&ws, true).await;
    let run = finished_run(&app, &broker.directory_id, "sync_enabled").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert!(!truth.is_empty());
    assert_eq!(members, truth);
}

async fn an_activation_before_the_workspace_is_found_when_sync_turns_on(backend: Backend) {
    let broker = broker(30, 3, Faults::default()).await;
    let app = app_for(backend, &broker, Duration::ZERO).await;
    // The broker announces the directory before the workspace exists: the event is skipped (rule 7).
    let directory = json!({"object": "directory", "id": broker.directory_id, "organization_id": "org_dev",
        "type": "okta scim v2.0", "state": "active", "name": "Dev", "created_at": at(0), "updated_at": at(0)});
    app.deliver(&[event("dsync.activated", directory, &at(0))])
        .await;
    let ws = app.create_workspace("org_dev", "growth").await;
    assert!(runs(&app, &broker.directory_id).await.is_empty());
    // Turning sync on finds the directory at the broker and pulls it, with no operator step.
    app.set_sync(&ws, true).await;
    let run = finished_run(&app, &broker.directory_id, "sync_enabled").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert!(!truth.is_empty());
    assert_eq!(members, truth);
}

async fn turning_sync_off_and_on_again_soon_pulls_once(backend: Backend) {
    let broker = broker(10, 2, Faults::default()).await;
    let app = app_for_with(backend, &broker, Duration::ZERO, |s| {
        s.automatic_pull_spacing = Duration::from_secs(600);
    })
    .await;
    let ws = app.create_workspace("org_dev", "growth").await;
    know_directory(&app, &broker.directory_id, "org_dev");
    app.set_sync(&ws, true).await;
    let first = finished_run(&app, &broker.directory_id, "sync_enabled").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let requests = |scrape: &str| -> f64 {
        ["directories", "directory_users", "directory_groups"]
            .iter()
            .map(|e| {
                value(
                    scrape,
                    &format!("rollcall_broker_requests_total{{endpoint=\"{e}\"}}"),
                )
            })
            .sum()
    };
    let after_first = app.scrape().await;
    assert_eq!(
        value(
            &after_first,
            "rollcall_broker_requests_total{endpoint=\"directories\"}"
        ),
        1.0,
        "the first switch-on asked the broker for the organization's directories"
    );
    // The pull is over, so nothing but the spacing holds the next ones back: thirty more switches cost
    // the shared API key no request at all, neither a listing of directories nor a pull.
    for _ in 0..30 {
        app.set_sync(&ws, false).await;
        app.set_sync(&ws, true).await;
    }
    // Each switch-on decides in the background: once all thirty have skipped their pull (as too soon, or
    // because the first run had not let go of the directory yet), they are done.
    let skipped = |scrape: &str| {
        ["in_progress", "too_soon"]
            .iter()
            .map(|reason| {
                value(
                    scrape,
                    &format!("rollcall_sync_runs_skipped_total{{reason=\"{reason}\"}}"),
                )
            })
            .sum::<f64>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let settled = loop {
        let scrape = app.scrape().await;
        if skipped(&scrape) >= 30.0 {
            break scrape;
        }
        assert!(
            Instant::now() < deadline,
            "the switch-ons never all decided: {scrape}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(skipped(&settled), 30.0);
    assert_eq!(requests(&settled), requests(&after_first));
    // An operator is never held back.
    let resync = resync(&app, &broker.directory_id).await;
    assert_eq!(resync["status"], "succeeded", "{resync}");
    let triggers: Vec<String> = runs(&app, &broker.directory_id)
        .await
        .iter()
        .map(|r| r["trigger"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(triggers, ["on_demand", "sync_enabled"]);
}

async fn only_qualifying_directories_are_scheduled(backend: Backend) {
    let broker = broker(1, 1, Faults::default()).await;
    let app = app_for(backend, &broker, Duration::ZERO).await;
    app.synced_workspace("org_on").await;
    app.create_workspace("org_off", "growth").await;
    app.create_workspace("org_free", "free").await;
    let downgraded = app.synced_workspace("org_downgraded").await;
    for (directory, organization) in [
        ("directory_on_b", "org_on"),
        ("directory_on_a", "org_on"),
        ("directory_off", "org_off"),
        ("directory_free", "org_free"),
        ("directory_downgraded", "org_downgraded"),
        ("directory_nobody", "org_nobody"),
    ] {
        know_directory(&app, directory, organization);
    }
    let (status, body) = app
        .op(
            Method::PATCH,
            &format!("/api/v1/workspaces/{downgraded}"),
            Some(json!({ "plan": "starter" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let scheduled = |app: &TestApp| {
        app.db
            .read(|c| {
                rollcall::sync_runs::schedule::scheduled_directories(c).map_err(DbError::from)
            })
            .unwrap()
    };
    assert_eq!(scheduled(&app), ["directory_on_a", "directory_on_b"]);
    // A deleted directory is not pulled.
    let deleted = json!({"object": "directory", "id": "directory_on_b", "organization_id": "org_on",
        "type": "okta scim v2.0", "state": "deleting", "name": "Dev", "created_at": at(0), "updated_at": at(1)});
    app.deliver(&[event("dsync.deleted", deleted, &at(1))])
        .await;
    assert_eq!(scheduled(&app), ["directory_on_a"]);
    assert_eq!(
        app.db
            .read(
                |c| rollcall::sync_runs::schedule::organization_directories(c, "org_on")
                    .map_err(DbError::from)
            )
            .unwrap(),
        ["directory_on_a"]
    );
}

async fn runs_are_listed_newest_first_by_directory(backend: Backend) {
    let broker = broker(5, 1, Faults::default()).await;
    let app = app_for(backend, &broker, Duration::ZERO).await;
    app.synced_workspace("org_dev").await;
    // Turning sync on found the directory at the broker and pulled it: that run is listed too.
    let first = finished_run(&app, &broker.directory_id, "sync_enabled").await;
    let mut started = vec![first["id"].as_str().unwrap().to_string()];
    for _ in 0..3 {
        let (status, body) = app
            .op(
                Method::POST,
                &format!("/api/v1/directories/{}/resync", broker.directory_id),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let run = body["run_id"].as_str().unwrap().to_string();
        started.push(run.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, body) = app
                .op(Method::GET, &format!("/api/v1/sync-runs/{run}"), None)
                .await;
            if body["status"] == "succeeded" {
                break;
            }
            assert!(Instant::now() < deadline, "{body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    started.reverse();
    let listed: Vec<String> = runs(&app, &broker.directory_id)
        .await
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, started);
    assert!(runs(&app, "directory_other").await.is_empty());
    // Pages of one, following the cursor.
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let (status, body) = app
            .op(
                Method::GET,
                &format!(
                    "/api/v1/sync-runs?directory={}&limit=1&after={after}",
                    broker.directory_id
                ),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        paged.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
        match body["list_metadata"]["after"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    assert_eq!(paged, started);
    let (status, body) = app
        .op(Method::GET, "/api/v1/sync-runs?status=succeeded", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 4);
    assert_eq!(body["data"][0]["trigger"], "on_demand");
    let (status, body) = app
        .op(Method::GET, "/api/v1/sync-runs?status=finished", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_parameter");
    let (status, _) = app.call(Method::GET, "/api/v1/sync-runs", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let ws = app.create_workspace("org_admin", "growth").await;
    let admin = app.admin_token(&ws).await;
    let (status, _) = app
        .call(Method::GET, "/api/v1/sync-runs", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn value(scrape: &str, series: &str) -> f64 {
    sample_value(scrape, series).unwrap_or_else(|| panic!("no {series} in\n{scrape}"))
}

async fn metrics_count_runs_broker_requests_429s_and_webhooks(backend: Backend) {
    // One /directory_users request per second at the broker, four from the client: some are answered
    // 429 with Retry-After, and retried.
    let faults = Faults {
        rate_limit: Some(1),
        ..Faults::default()
    };
    let broker = broker(20, 3, faults).await;
    // Only the operator's pull: turning sync on pulls nothing, so that pull is never refused as a
    // second run of the directory.
    let app = app_for_with(backend, &broker, Duration::ZERO, |s| {
        s.pull_on_activation = false
    })
    .await;
    let before = app.scrape().await;
    assert_eq!(value(&before, "rollcall_sync_runs_running"), 0.0);
    assert_eq!(
        value(&before, "rollcall_sync_runs_total{status=\"succeeded\"}"),
        0.0
    );
    app.synced_workspace("org_dev").await;
    let run = resync(&app, &broker.directory_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let after = app.scrape().await;
    assert_eq!(
        value(&after, "rollcall_sync_runs_total{status=\"succeeded\"}"),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "rollcall_sync_runs_started_total{trigger=\"on_demand\"}"
        ),
        1.0
    );
    assert_eq!(value(&after, "rollcall_sync_runs_running"), 0.0);
    assert!(
        value(
            &after,
            "rollcall_broker_requests_total{endpoint=\"directories\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &after,
            "rollcall_broker_requests_total{endpoint=\"directory_groups\"}"
        ) >= 1.0
    );
    // The users, then each of the 3 groups' members, plus the retried ones.
    let user_requests = value(
        &after,
        "rollcall_broker_requests_total{endpoint=\"directory_users\"}",
    );
    let rate_limited = value(&after, "rollcall_broker_rate_limited_total");
    assert!(rate_limited >= 1.0, "{after}");
    assert!(value(&after, "rollcall_broker_retries_total") >= rate_limited);
    assert!(user_requests >= 4.0 + rate_limited, "{after}");

    // Webhooks, by outcome.
    let body = event(
        "dsync.group.created",
        json!({"object": "directory_group", "id": "directory_group_x", "directory_id": "directory_unknown",
               "organization_id": "org_unknown", "idp_id": "x", "name": "X", "created_at": at(0), "updated_at": at(0)}),
        &at(0),
    )
    .to_string();
    assert_eq!(
        app.post_webhook(body.as_bytes()).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.post_webhook_with(body.as_bytes(), Some("t=1, v1=00"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post_webhook(b"[1, 2]").await.status(),
        StatusCode::BAD_REQUEST
    );
    let webhooks = app.scrape().await;
    for (outcome, count) in [
        ("accepted", 1.0),
        ("unauthorized", 1.0),
        ("bad_request", 1.0),
        ("timeout", 0.0),
        ("too_large", 0.0),
        ("unavailable", 0.0),
    ] {
        assert_eq!(
            value(
                &webhooks,
                &format!("rollcall_webhooks_received_total{{outcome=\"{outcome}\"}}")
            ),
            count,
            "{outcome}"
        );
    }
}

async fn a_stopped_applier_shows_in_readiness_and_the_backlog(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let directory = TestDirectory::new();
    app.synced_workspace(&directory.organization_id).await;
    let created = |id: &str| {
        let user = directory.user(
            id,
            id,
            Some(&format!("{id}@example.com")),
            "Ada",
            "active",
            &at(1),
        );
        event("dsync.user.created", user, &at(1))
    };
    app.deliver(&[created("directory_user_applied")]).await;
    let applied = app.scrape().await;
    assert_eq!(value(&applied, "rollcall_apply_lag_seconds_count"), 1.0);
    assert_eq!(value(&applied, "rollcall_deliveries_waiting"), 0.0);
    assert_eq!(
        value(&applied, "rollcall_oldest_waiting_delivery_age_seconds"),
        0.0
    );
    assert_eq!(value(&applied, "rollcall_applier_running"), 1.0);
    let (status, _) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);

    app.stop_applier();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.call(Method::GET, "/readyz", None, None).await.0 == StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "/readyz still answers 200 with the applier stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, body["applier"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("stopped"))
    );
    // Deliveries are still acknowledged, and wait where the metrics show them.
    for id in ["directory_user_waiting_1", "directory_user_waiting_2"] {
        let response = app.post_webhook(created(id).to_string().as_bytes()).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // The oldest waiting delivery's age counts from its receipt: received a minute ago, as stored.
    let minute_ago = rollcall::workos::timestamp::now() - chrono::Duration::seconds(60);
    app.db
        .write(|conn| {
            use diesel::prelude::*;
            use rollcall::db::schema::webhook_events as e;
            diesel::update(e::table.filter(e::event_id.is_not_null()))
                .filter(e::status.eq("received"))
                .set(e::received_at.eq(minute_ago))
                .execute(conn)
                .map_err(rollcall::db::DbError::from)
        })
        .unwrap();
    let stopped = app.scrape().await;
    assert_eq!(value(&stopped, "rollcall_deliveries_waiting"), 2.0);
    let age = value(&stopped, "rollcall_oldest_waiting_delivery_age_seconds");
    assert!((60.0..120.0).contains(&age), "{age}");
    assert_eq!(value(&stopped, "rollcall_applier_running"), 0.0);
    assert_eq!(value(&stopped, "rollcall_apply_lag_seconds_count"), 1.0);
}
