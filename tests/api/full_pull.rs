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
    DevBroker, DevBrokerConfig, DevBrokerHandle, DirectorySource, DirectoryTruth, Faults,
    GenerateOptions, WebhookTarget,
};
use rollcall::directory_sync::reconcile::{
    reconcile_directory, DeprovisionGuard, DirectoryListing, ReconcileCounts,
};
use rollcall::directory_sync::{ApplyContext, ApplyError};
use rollcall::workos::timestamp;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub(crate) const GUARD: DeprovisionGuard = DeprovisionGuard {
    max_share: 0.2,
    min_count: 10,
    force: false,
};

pub(crate) async fn broker(
    users: u32,
    webhook: Option<WebhookTarget>,
    faults: Faults,
) -> DevBrokerHandle {
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
pub(crate) async fn attach(app: &TestApp, broker: &DevBrokerHandle) -> String {
    let ws = app.synced_workspace("org_dev").await;
    let directory = json!({"object": "directory", "id": broker.directory_id, "organization_id": "org_dev",
        "type": "okta scim v2.0", "state": "active", "name": "Dev", "created_at": at(0), "updated_at": at(0)});
    app.deliver(&[event("dsync.activated", directory, &at(0))])
        .await;
    ws
}

pub(crate) async fn listing(broker: &DevBrokerHandle) -> UsersWithGroups {
    let client = BrokerClient::new(BrokerSettings {
        base_url: broker.base_url.clone(),
        api_key: broker.api_key.clone().into(),
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
pub(crate) fn pull(
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
pub(crate) fn memberships_of(app: &TestApp, directory_id: &str) -> BTreeSet<(String, String)> {
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

/// Attaches the broker's directory to a synced workspace and pulls it once; returns the workspace.
pub(crate) async fn pulled_once(app: &TestApp, broker: &DevBrokerHandle) -> String {
    let ws = attach(app, broker).await;
    let listed = listing(broker).await;
    pull(
        app,
        &ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        GUARD,
    );
    ws
}

/// A dev broker of `users` users whose webhooks to `app` drop 30%, duplicate 10% and reorder the rest, its
/// directory attached and pulled once; returns it and the workspace.
async fn lossy_broker_pulled_once(app: &TestApp, users: u32) -> (DevBrokerHandle, String) {
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
    let broker = broker(users, Some(target), faults).await;
    let ws = pulled_once(app, &broker).await;
    (broker, ws)
}

async fn lossy_webhooks_then_one_pull_match_the_broker(app: TestApp) {
    let (broker, ws) = lossy_broker_pulled_once(&app, 40).await;
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

/// Teams an admin made, each with the directory groups linked to it, and the role mappings put.
struct TeamsAndRoles {
    teams: Vec<(String, Vec<String>)>,
    mappings: Vec<(String, &'static str)>,
}

/// The rank of a role: `owner` > `admin` > `builder` > `viewer`.
fn rank(role: &str) -> u8 {
    match role {
        "owner" => 4,
        "admin" => 3,
        "builder" => 2,
        "viewer" => 1,
        other => panic!("unknown role {other}"),
    }
}

/// A workspace's state as rules 1, 3, 8, 10 and 11 derive it: the role of each active member by email, and
/// `(team, email, group)` for each linked group that puts a member in a team.
type DerivedState = (BTreeMap<String, String>, BTreeSet<(String, String, String)>);

/// What Rollcall must hold once it is in step with `truth`: every active user with an email is an active
/// member with the highest mapped role among its groups (else `default_role`), and is in each team through
/// each of the team's linked groups it belongs to. A deleted group's link and mapping are gone (rule 10).
fn expected_from_truth(
    truth: &DirectoryTruth,
    setup: &TeamsAndRoles,
    default_role: &str,
    owners: &BTreeSet<String>,
) -> DerivedState {
    let live_groups: BTreeSet<&str> = truth.groups.iter().map(|g| g.id.as_str()).collect();
    let mut groups_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (group, user) in &truth.memberships {
        groups_of.entry(user).or_default().insert(group);
    }
    let mut roles = BTreeMap::new();
    let mut placements = BTreeSet::new();
    for user in truth.users.iter().filter(|u| u.state == "active") {
        let Some(email) = user.email.as_deref().map(str::to_lowercase) else {
            continue;
        };
        let empty = BTreeSet::new();
        let groups = groups_of.get(user.id.as_str()).unwrap_or(&empty);
        let role = setup
            .mappings
            .iter()
            .filter(|(group, _)| live_groups.contains(group.as_str()))
            .filter(|(group, _)| groups.contains(group.as_str()))
            .map(|(_, role)| *role)
            .max_by_key(|role| rank(role))
            .unwrap_or(default_role);
        let role = if owners.contains(&email) {
            "owner"
        } else {
            role
        };
        for (team, linked) in &setup.teams {
            for group in linked.iter().filter(|g| groups.contains(g.as_str())) {
                placements.insert((team.clone(), email.clone(), group.clone()));
            }
        }
        roles.insert(email, role.to_string());
    }
    (roles, placements)
}

/// What Rollcall holds, read through the API: the role of each active member by email, and every team
/// member's sources as `(team, email, group)` (`"manual"` for a manual source).
async fn actual_state(app: &TestApp, ws: &str, setup: &TeamsAndRoles) -> DerivedState {
    let roles = app
        .members(ws)
        .await
        .iter()
        .filter(|m| m["status"] == "active")
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_lowercase(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut placements = BTreeSet::new();
    for (team, _) in &setup.teams {
        let (status, body) = app
            .op(
                Method::GET,
                &format!("/api/v1/workspaces/{ws}/teams/{team}/members?limit=1000"),
                None,
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        assert!(body["list_metadata"]["after"].is_null(), "one page: {body}");
        for member in body["data"].as_array().unwrap() {
            let email = member["email"].as_str().unwrap().to_lowercase();
            for source in member["sources"].as_array().unwrap() {
                let why = match source["type"].as_str() {
                    Some("directory_group") => source["group_id"].as_str().unwrap().to_string(),
                    _ => "manual".to_string(),
                };
                placements.insert((team.clone(), email.clone(), why));
            }
        }
    }
    (roles, placements)
}

/// The emails of members whose role is `owner`: the directory leaves them as they are.
async fn owners(app: &TestApp, ws: &str) -> BTreeSet<String> {
    app.members(ws)
        .await
        .iter()
        .filter(|m| m["role"] == "owner")
        .map(|m| m["email"].as_str().unwrap().to_lowercase())
        .collect()
}

async fn default_role(app: &TestApp, ws: &str) -> String {
    let (status, body) = app
        .op(Method::GET, &format!("/api/v1/workspaces/{ws}"), None)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    body["default_role"].as_str().unwrap().to_string()
}

/// An active user with an email in every group of `within` and in none of `outside`, other than `taken`.
fn pick_user(
    truth: &DirectoryTruth,
    within: &[&str],
    outside: &[&str],
    state: &str,
    taken: &[String],
) -> String {
    let in_group = |group: &str, user: &str| {
        truth
            .memberships
            .contains(&(group.to_string(), user.to_string()))
    };
    truth
        .users
        .iter()
        .filter(|u| u.state == state && u.email.is_some() && !taken.contains(&u.id))
        .find(|u| {
            within.iter().all(|g| in_group(g, &u.id)) && !outside.iter().any(|g| in_group(g, &u.id))
        })
        .unwrap_or_else(|| panic!("no {state} user in {within:?} and outside {outside:?}"))
        .id
        .clone()
}

async fn lossy_webhooks_then_one_pull_match_teams_and_roles(app: TestApp) {
    let (broker, ws) = lossy_broker_pulled_once(&app, 60).await;

    // An admin sets up teams linked to directory groups, and maps groups to roles.
    let truth = broker.truth();
    let g: Vec<String> = truth.groups.iter().map(|g| g.id.clone()).collect();
    let mut setup = TeamsAndRoles {
        teams: Vec::new(),
        mappings: vec![(g[0].clone(), "admin"), (g[1].clone(), "builder")],
    };
    for (name, linked) in [
        ("Platform", vec![g[0].clone()]),
        ("Product", vec![g[1].clone(), g[2].clone()]),
        ("Support", vec![g[3].clone()]),
    ] {
        let team = team_following(&app, &ws, name, &linked).await;
        setup.teams.push((team, linked));
    }
    map_roles(&app, &ws, &setup.mappings).await;
    let default_role = default_role(&app, &ws).await;
    assert_eq!(default_role, "viewer");
    let owners = owners(&app, &ws).await;
    let expected = expected_from_truth(&truth, &setup, &default_role, &owners);
    assert_eq!(
        actual_state(&app, &ws, &setup).await,
        expected,
        "links and mappings put every member in place"
    );
    assert!(
        expected.1.len() >= 20,
        "the teams are populated: {expected:?}"
    );
    assert!(
        expected.0.values().any(|r| r == "admin") && expected.0.values().any(|r| r == "builder"),
        "{expected:?}"
    );

    // Changes to linked and mapped groups whose webhooks are all lost: only the pull can repair them.
    broker
        .set_faults(&rollcall::dev_broker::FaultsUpdate {
            drop: Some(1.0),
            ..Default::default()
        })
        .expect("valid faults");
    let (g0, g1, g2, g3) = (g[0].as_str(), g[1].as_str(), g[2].as_str(), g[3].as_str());
    let mut hidden = Vec::new();
    // An admin of Platform moves to a group that makes them a builder in Product.
    hidden.push(pick_user(&truth, &[g0], &[g1, g2, g3], "active", &hidden));
    broker.move_user(&hidden[0], g0, g1).expect("moved");
    // Someone leaves Support.
    hidden.push(pick_user(&truth, &[g3], &[g0, g1, g2], "active", &hidden));
    broker.remove_from_group(g3, &hidden[1]).expect("removed");
    // Someone in no linked group joins one linked to Product.
    hidden.push(pick_user(&truth, &[], &[g0, g1, g2, g3], "active", &hidden));
    broker.add_to_group(g2, &hidden[2]).expect("added");
    // A builder is deactivated.
    hidden.push(pick_user(&truth, &[g1], &[g0], "active", &hidden));
    broker.deactivate_user(&hidden[3]).expect("deactivated");
    assert!(
        broker.settle(Duration::from_secs(20)).await,
        "the lost events are settled"
    );
    broker
        .set_faults(&rollcall::dev_broker::FaultsUpdate {
            drop: Some(0.3),
            ..Default::default()
        })
        .expect("valid faults");
    let lost = broker.event_summary();
    assert!(lost.dropped >= 5, "{lost:?}");

    // Then a lossy stretch: dropped, duplicated and reordered deliveries.
    broker.random_changes(60);
    assert!(
        broker.settle(Duration::from_secs(20)).await,
        "the dev broker delivered everything it meant to"
    );
    app.wait_applied().await;
    let sent = broker.event_summary();
    assert!(
        sent.dropped > lost.dropped && sent.duplicated > 0,
        "{sent:?}"
    );
    let truth = broker.truth();
    let expected = expected_from_truth(&truth, &setup, &default_role, &owners);
    let before_pull = actual_state(&app, &ws, &setup).await;
    assert_ne!(
        before_pull.0, expected.0,
        "with the lost events, members or roles should have drifted before the pull"
    );
    assert_ne!(
        before_pull.1, expected.1,
        "with the lost events, teams should have drifted before the pull"
    );

    // One full pull brings members, teams and roles back in line with the broker.
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
    let (members, truth_members) = active_members_and_truth(&app, &ws, &broker).await;
    assert_eq!(members, truth_members);
    let (roles, placements) = actual_state(&app, &ws, &setup).await;
    assert_eq!(roles, expected.0, "active members and their roles");
    let teams = |p: &BTreeSet<(String, String, String)>| -> BTreeSet<(String, String)> {
        p.iter().map(|(t, e, _)| (t.clone(), e.clone())).collect()
    };
    assert_eq!(teams(&placements), teams(&expected.1), "team memberships");
    assert_eq!(placements, expected.1, "team membership sources");
    // Links of deleted groups are gone; the others remain.
    let live: BTreeSet<&str> = truth.groups.iter().map(|g| g.id.as_str()).collect();
    for (team, linked) in &setup.teams {
        let (status, body) = app
            .op(
                Method::GET,
                &format!("/api/v1/workspaces/{ws}/teams/{team}"),
                None,
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        let mut still: Vec<&str> = linked
            .iter()
            .map(String::as_str)
            .filter(|g| live.contains(g))
            .collect();
        still.sort();
        assert_eq!(body["linked_group_ids"], json!(still), "{body}");
    }
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
    let ws = pulled_once(&app, &broker).await;
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
    lossy_webhooks_then_one_pull_match_teams_and_roles,
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

/// A pass-through to the dev broker that answers 500 to one page of a directory's user listing, every
/// time it is asked (so the client's retries fail too); pages are numbered from the listing's first page.
struct FailingPage {
    base_url: String,
    state: actix_web::web::Data<PassThrough>,
    server: actix_web::dev::ServerHandle,
}

struct PassThrough {
    upstream: String,
    client: reqwest::Client,
    /// The page answered 500; 0: none.
    fail_page: std::sync::atomic::AtomicU32,
    /// The `after` cursors of the current user listing, in the order they were first asked for.
    cursors: std::sync::Mutex<Vec<String>>,
    /// How many requests for the failing page were answered 500.
    failed: std::sync::atomic::AtomicU32,
    /// The highest page of a user listing asked for.
    deepest: std::sync::atomic::AtomicU32,
    /// A group whose member listing is answered 500, every time.
    fail_group: std::sync::Mutex<Option<String>>,
}

impl PassThrough {
    /// The page of the directory's user listing that a request with this `after` cursor asks for.
    fn page_of(&self, after: Option<&String>) -> u32 {
        let mut cursors = self.cursors.lock().unwrap();
        let page = match after {
            None => {
                cursors.clear();
                1
            }
            Some(cursor) => match cursors.iter().position(|c| c == cursor) {
                Some(i) => i as u32 + 2,
                None => {
                    cursors.push(cursor.clone());
                    cursors.len() as u32 + 1
                }
            },
        };
        self.deepest
            .fetch_max(page, std::sync::atomic::Ordering::SeqCst);
        page
    }
}

async fn pass_through(
    request: actix_web::HttpRequest,
    state: actix_web::web::Data<PassThrough>,
) -> actix_web::HttpResponse {
    use std::sync::atomic::Ordering;
    let query: std::collections::HashMap<String, String> = actix_web::web::Query::<
        std::collections::HashMap<String, String>,
    >::from_query(request.query_string())
    .map(|q| q.into_inner())
    .unwrap_or_default();
    let failing_group = state.fail_group.lock().unwrap().clone();
    if request.path() == "/directory_users"
        && failing_group.is_some()
        && query.get("group") == failing_group.as_ref()
    {
        return actix_web::HttpResponse::InternalServerError()
            .json(json!({ "message": "Internal Server Error" }));
    }
    if request.path() == "/directory_users" && query.contains_key("directory") {
        let page = state.page_of(query.get("after"));
        if page == state.fail_page.load(Ordering::SeqCst) {
            state.failed.fetch_add(1, Ordering::SeqCst);
            return actix_web::HttpResponse::InternalServerError()
                .json(json!({ "message": "Internal Server Error" }));
        }
    }
    let mut forwarded = state
        .client
        .get(format!("{}{}", state.upstream, request.uri()));
    if let Some(auth) = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        forwarded = forwarded.header("authorization", auth);
    }
    let response = forwarded.send().await.expect("the dev broker answers");
    let status = actix_web::http::StatusCode::from_u16(response.status().as_u16()).unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.bytes().await.expect("the dev broker's body");
    let mut answer = actix_web::HttpResponse::build(status);
    if let Some(retry_after) = retry_after {
        answer.insert_header(("Retry-After", retry_after));
    }
    answer.content_type("application/json").body(body.to_vec())
}

impl FailingPage {
    async fn start(upstream: &str) -> Self {
        let state = actix_web::web::Data::new(PassThrough {
            upstream: upstream.to_string(),
            client: reqwest::Client::new(),
            fail_page: 0.into(),
            cursors: Default::default(),
            failed: 0.into(),
            deepest: 0.into(),
            fail_group: Default::default(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let data = state.clone();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .default_service(actix_web::web::to(pass_through))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base_url: format!("http://{addr}"),
            state,
            server: handle,
        }
    }

    /// Fails this page of user listings from now on; 0: none.
    fn fail_page(&self, page: u32) {
        use std::sync::atomic::Ordering;
        self.state.fail_page.store(page, Ordering::SeqCst);
        self.state.failed.store(0, Ordering::SeqCst);
        self.state.deepest.store(0, Ordering::SeqCst);
    }
}

impl FailingPage {
    /// Fails every member listing of this group from now on; `None`: none.
    fn fail_group(&self, group: Option<&str>) {
        *self.state.fail_group.lock().unwrap() = group.map(str::to_string);
    }
}

impl Drop for FailingPage {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

/// A new team named `name` with `groups` linked to it; returns its id.
pub(crate) async fn team_following(
    app: &TestApp,
    ws: &str,
    name: &str,
    groups: &[String],
) -> String {
    let (status, team) = app
        .op(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/teams"),
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{team}");
    let team = team["id"].as_str().unwrap().to_string();
    for group in groups {
        let (status, body) = app
            .op(
                Method::POST,
                &format!("/api/v1/workspaces/{ws}/teams/{team}/directory-groups"),
                Some(json!({ "group_id": group })),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    }
    team
}

/// Replaces the workspace's role mappings with these `(group, role)` pairs.
pub(crate) async fn map_roles(app: &TestApp, ws: &str, mappings: &[(String, &str)]) {
    let mappings: Vec<serde_json::Value> = mappings
        .iter()
        .map(|(group, role)| json!({ "group_id": group, "role": role }))
        .collect();
    let (status, body) = app
        .op(
            Method::PUT,
            &format!("/api/v1/workspaces/{ws}/role-mappings"),
            Some(json!(mappings)),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
}

/// Every audit entry of a workspace, newest first, read a page at a time.
async fn audit_log(app: &TestApp, ws: &str) -> Vec<serde_json::Value> {
    let mut entries = Vec::new();
    let mut after = String::new();
    loop {
        let (status, body) = app
            .op(
                Method::GET,
                &format!("/api/v1/workspaces/{ws}/audit-log?limit=1000{after}"),
                None,
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        entries.extend(body["data"].as_array().unwrap().iter().cloned());
        match body["list_metadata"]["after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return entries,
        }
    }
}

/// The team's members as `(email, status)`.
pub(crate) async fn team_roster(app: &TestApp, ws: &str, team: &str) -> BTreeSet<(String, String)> {
    let (status, body) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/teams/{team}/members?limit=1000"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert!(body["list_metadata"]["after"].is_null(), "one page: {body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_lowercase(),
                m["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Members as `id → (email, status)`.
async fn member_states(app: &TestApp, ws: &str) -> BTreeMap<String, (String, String)> {
    app.members(ws)
        .await
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                (
                    m["email"].as_str().unwrap().to_lowercase(),
                    m["status"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

async fn a_listing_that_fails_on_page_7_deletes_nothing(backend: crate::helpers::Backend) {
    // 800 users: 8 pages of 100 in the user listing.
    let broker = broker(800, None, Faults::default()).await;
    let proxy = FailingPage::start(&broker.base_url).await;
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.workos_api_key = Some(broker.api_key.clone());
        s.workos_api_base = proxy.base_url.clone();
        s.user_listing_rate = 0.0;
    })
    .await;
    let ws = attach(&app, &broker).await;
    let first = resync(&app, &broker.directory_id, false).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["counts"]["users_created"], 800, "{first}");
    assert!(
        proxy
            .state
            .deepest
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 8
    );

    // A team follows a directory group.
    let truth = broker.truth();
    let group = truth.groups[0].id.clone();
    let team = team_following(&app, &ws, "Followers", std::slice::from_ref(&group)).await;

    // At the broker, with no webhook to tell Rollcall: users on the first pages are deactivated, users on
    // the first and the last pages deleted, and members leave the team's group.
    let active: Vec<&rollcall::dev_broker::DirectoryUserObject> = truth
        .users
        .iter()
        .filter(|u| u.state == "active" && u.email.is_some())
        .collect();
    let in_group = |u: &str| truth.memberships.contains(&(group.clone(), u.to_string()));
    let position = |u: &str| truth.users.iter().position(|x| x.id == u).unwrap();
    let leaving: Vec<String> = active
        .iter()
        .filter(|u| in_group(&u.id) && position(&u.id) < 600)
        .take(4)
        .map(|u| u.id.clone())
        .collect();
    let rest: Vec<&&rollcall::dev_broker::DirectoryUserObject> =
        active.iter().filter(|u| !leaving.contains(&u.id)).collect();
    let deactivated: Vec<String> = rest
        .iter()
        .filter(|u| position(&u.id) < 600)
        .step_by(97)
        .take(5)
        .map(|u| u.id.clone())
        .collect();
    let deleted: Vec<String> = rest
        .iter()
        .filter(|u| position(&u.id) < 300 || position(&u.id) >= 700)
        .filter(|u| !deactivated.contains(&u.id))
        .step_by(61)
        .take(6)
        .map(|u| u.id.clone())
        .collect();
    assert_eq!((leaving.len(), deactivated.len(), deleted.len()), (4, 5, 6));
    assert!(deleted.iter().any(|u| position(u) >= 700));
    for user in &leaving {
        broker.remove_from_group(&group, user).expect("removed");
    }
    for user in &deactivated {
        broker.deactivate_user(user).expect("deactivated");
    }
    for user in &deleted {
        broker.delete_user(user).expect("deleted");
    }
    let gone_emails: BTreeSet<String> = truth
        .users
        .iter()
        .filter(|u| deactivated.contains(&u.id) || deleted.contains(&u.id))
        .map(|u| u.email.clone().unwrap().to_lowercase())
        .collect();
    let leaving_emails: BTreeSet<String> = truth
        .users
        .iter()
        .filter(|u| leaving.contains(&u.id))
        .map(|u| u.email.clone().unwrap().to_lowercase())
        .collect();

    let members_before = member_states(&app, &ws).await;
    let memberships_before = memberships_of(&app, &broker.directory_id);
    let roster_before = team_roster(&app, &ws, &team).await;
    assert!(leaving_emails
        .iter()
        .all(|e| roster_before.contains(&(e.clone(), "active".into()))));
    assert!(gone_emails.iter().all(|e| members_before
        .values()
        .any(|m| m == &(e.clone(), "active".to_string()))));

    // Page 7 of the user listing fails, retries included: the run fails and deletes nothing.
    proxy.fail_page(7);
    let failed = resync(&app, &broker.directory_id, false).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("listing") && error.contains("incomplete"),
        "{failed}"
    );
    assert!(error.contains("/directory_users"), "{failed}");
    let asked = proxy.state.failed.load(std::sync::atomic::Ordering::SeqCst);
    assert!(asked >= 2, "page 7 was asked for {asked} time(s): retried");
    assert_eq!(
        proxy
            .state
            .deepest
            .load(std::sync::atomic::Ordering::SeqCst),
        7,
        "the listing stopped at page 7"
    );
    assert_eq!(failed["progress"]["users_listed"], 600, "{failed}");

    let members_after = member_states(&app, &ws).await;
    for (id, before) in &members_before {
        assert_eq!(members_after.get(id), Some(before), "member {id}");
    }
    let memberships_after = memberships_of(&app, &broker.directory_id);
    let removed: Vec<_> = memberships_before.difference(&memberships_after).collect();
    assert!(removed.is_empty(), "memberships removed: {removed:?}");
    let roster_after = team_roster(&app, &ws, &team).await;
    assert!(
        roster_before.is_subset(&roster_after),
        "left the team: {:?}",
        roster_before.difference(&roster_after).collect::<Vec<_>>()
    );
    let run_id = failed["id"].as_str().unwrap();
    let destructive: Vec<serde_json::Value> = audit_log(&app, &ws)
        .await
        .into_iter()
        .filter(|e| e["cause"]["type"] == "sync_run" && e["cause"]["id"] == run_id)
        .filter(|e| {
            let action = e["action"].as_str().unwrap_or_default();
            action.ends_with("deprovisioned")
                || action.ends_with("removed")
                || action.ends_with("deleted")
                || (action == "member.updated" && e["after"]["status"] == "deprovisioned")
        })
        .collect();
    assert_eq!(destructive, Vec::<serde_json::Value>::new());

    // Once the broker answers again, the next run applies the removals.
    proxy.fail_page(0);
    let run = resync(&app, &broker.directory_id, false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["deprovisioned"], 11, "{run}");
    assert_eq!(run["counts"]["users_deleted"], 6, "{run}");
    let members = member_states(&app, &ws).await;
    for email in &gone_emails {
        assert!(
            members
                .values()
                .any(|m| m == &(email.clone(), "deprovisioned".to_string())),
            "{email} is deprovisioned"
        );
    }
    let (active_members, truth_members) = active_members_and_truth(&app, &ws, &broker).await;
    assert_eq!(active_members, truth_members);
    let truth = broker.truth();
    assert_eq!(
        memberships_of(&app, &broker.directory_id),
        truth.memberships
    );
    let expected_roster: BTreeSet<(String, String)> = truth
        .users
        .iter()
        .filter(|u| u.state == "active")
        .filter(|u| truth.memberships.contains(&(group.clone(), u.id.clone())))
        .filter_map(|u| Some((u.email.clone()?.to_lowercase(), "active".to_string())))
        .collect();
    let roster = team_roster(&app, &ws, &team).await;
    assert_eq!(roster, expected_roster);
    assert!(leaving_emails
        .iter()
        .all(|e| !roster.iter().any(|(r, _)| r == e)));
    let run_id = run["id"].as_str().unwrap();
    let deprovisions = audit_log(&app, &ws)
        .await
        .into_iter()
        .filter(|e| e["cause"]["type"] == "sync_run" && e["cause"]["id"] == run_id)
        .filter(|e| e["action"] == "member.deprovisioned")
        .count();
    assert_eq!(deprovisions, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_fails_on_page_7_deletes_nothing_sqlite() {
    a_listing_that_fails_on_page_7_deletes_nothing(crate::helpers::Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_fails_on_page_7_deletes_nothing_postgres() {
    a_listing_that_fails_on_page_7_deletes_nothing(crate::helpers::Backend::Postgres).await
}

/// A pull that fails after adding memberships still brings those users' teams and roles in line; and a
/// pull repairs a team source lost behind Rollcall's back.
async fn teams_and_roles_follow_a_failed_pull_and_are_repaired_by_the_next(
    backend: crate::helpers::Backend,
) {
    let broker = broker(40, None, Faults::default()).await;
    let proxy = FailingPage::start(&broker.base_url).await;
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.workos_api_key = Some(broker.api_key.clone());
        s.workos_api_base = proxy.base_url.clone();
        s.user_listing_rate = 0.0;
    })
    .await;
    let ws = attach(&app, &broker).await;
    let first = resync(&app, &broker.directory_id, false).await;
    assert_eq!(first["status"], "succeeded", "{first}");

    // The first listed group feeds a team and the admin role.
    let truth = broker.truth();
    let (group, last_group) = (
        truth.groups.first().unwrap().id.clone(),
        truth.groups.last().unwrap().id.clone(),
    );
    let team = team_following(&app, &ws, "Admins", std::slice::from_ref(&group)).await;
    map_roles(&app, &ws, &[(group.clone(), "admin")]).await;

    // At the broker, with no webhook: an active user outside the group joins it. The next pull lists that
    // group's members, then fails on the last group's.
    let newcomer = truth
        .users
        .iter()
        .find(|u| {
            u.state == "active"
                && u.email.is_some()
                && !truth.memberships.contains(&(group.clone(), u.id.clone()))
        })
        .expect("an active user outside the group");
    let email = newcomer.email.clone().unwrap().to_lowercase();
    let added = reqwest::Client::new()
        .post(format!("{}/_dev/groups/{group}/members", broker.base_url))
        .json(&json!({ "user_id": newcomer.id }))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    let member = app
        .member(&ws, &email)
        .await
        .expect("the newcomer's member");
    assert_ne!(member["role"], "admin", "{member}");
    assert!(!team_roster(&app, &ws, &team)
        .await
        .iter()
        .any(|(e, _)| *e == email));

    proxy.fail_group(Some(&last_group));
    let failed = resync(&app, &broker.directory_id, false).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let member = app.member(&ws, &email).await.unwrap();
    assert_eq!(member["role"], "admin", "{member}");
    assert!(
        team_roster(&app, &ws, &team)
            .await
            .iter()
            .any(|(e, _)| *e == email),
        "the newcomer is in the group's team after the failed pull"
    );

    // A source lost behind Rollcall's back (the membership stays recorded) comes back with the next pull.
    let member_id = member["id"].as_str().unwrap().to_string();
    app.db
        .write(|c| {
            use rollcall::db::schema::team_member_sources as sources;
            diesel::delete(sources::table.filter(sources::member_id.eq(&member_id)))
                .execute(c)
                .map_err(DbError::from)
        })
        .unwrap();
    assert!(!team_roster(&app, &ws, &team)
        .await
        .iter()
        .any(|(e, _)| *e == email));
    proxy.fail_group(None);
    let repaired = resync(&app, &broker.directory_id, false).await;
    assert_eq!(repaired["status"], "succeeded", "{repaired}");
    assert!(
        team_roster(&app, &ws, &team)
            .await
            .iter()
            .any(|(e, _)| *e == email),
        "the next pull restores the team source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_and_roles_follow_a_failed_pull_and_are_repaired_by_the_next_sqlite() {
    teams_and_roles_follow_a_failed_pull_and_are_repaired_by_the_next(
        crate::helpers::Backend::Sqlite,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_and_roles_follow_a_failed_pull_and_are_repaired_by_the_next_postgres() {
    teams_and_roles_follow_a_failed_pull_and_are_repaired_by_the_next(
        crate::helpers::Backend::Postgres,
    )
    .await
}
