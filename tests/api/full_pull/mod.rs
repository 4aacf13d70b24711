//! The full pull's apply step against a dev broker over HTTP (rules 14 and 15), by behaviour: a first pull
//! and repair, the guard, resyncs and failures, teams and roles after pulls. Here: the helpers they and
//! other tests share.

mod first_pull;
mod guard;
mod preview;
mod resync_api;
mod teams_and_roles;

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
use rollcall::ids::{DirectoryGroupId, DirectoryId, DirectoryUserId};
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
            let directory_id = DirectoryId::from(directory_id);
            let memberships: BTreeSet<(DirectoryGroupId, DirectoryUserId)> = listed
                .memberships
                .iter()
                .map(|(g, u)| (g.as_str().into(), u.as_str().into()))
                .collect();
            let listing = DirectoryListing {
                directory_id: &directory_id,
                users: &listed.users,
                groups: &listed.groups,
                memberships: &memberships,
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

/// Lists the broker's directory now and applies the listing with `guard`.
pub(crate) async fn pull_now(
    app: &TestApp,
    ws: &str,
    broker: &DevBrokerHandle,
    guard: DeprovisionGuard,
) -> ReconcileCounts {
    let listed = listing(broker).await;
    pull(
        app,
        ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        guard,
    )
}

/// Attaches the broker's directory to a synced workspace and pulls it once; returns the workspace.
pub(crate) async fn pulled_once(app: &TestApp, broker: &DevBrokerHandle) -> String {
    let ws = attach(app, broker).await;
    pull_now(app, &ws, broker, GUARD).await;
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

/// Starts a resync through the API and waits for the run to end; returns the run.
pub(crate) async fn resync(app: &TestApp, directory_id: &str, force: bool) -> serde_json::Value {
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
        let data = state.clone();
        let (base_url, server) =
            crate::helpers::serve_http(move |request| pass_through(request, data.clone()));
        Self {
            base_url,
            state,
            server,
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
