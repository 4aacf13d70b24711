//! The change feed (rule 23): each change named with its cause and the object after it, positions without
//! gaps, a reader that applies the feed ends with what the API lists, across workspaces in one order that
//! concurrent writers never break, and a cursor behind retention told to list again.

use crate::helpers::TestApp;
use crate::teams::{link, new_team, Org};
use reqwest::{Method, StatusCode};
use rollcall::audit::{AuditRecord, Cause};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

crate::on_both_backends!(
    each_change_is_named_with_its_cause,
    an_admin_reads_its_own_workspace_and_the_operator_every_one,
    a_cursor_behind_retention_is_told_to_list_again,
    concurrent_writers_never_leave_a_reader_a_gap,
    a_change_is_read_across_workspaces_only_after_older_writes_end,
);

/// What a feed reader rebuilds, or what the API lists.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct State {
    /// Members by id, as the API shows them.
    members: BTreeMap<String, Value>,
    /// Team names by id.
    teams: BTreeMap<String, String>,
    /// Each team's members by id, with their sources (sorted).
    team_members: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

fn sorted_sources(sources: &Value) -> Vec<String> {
    let mut sources: Vec<String> = sources
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    sources.sort();
    sources
}

/// Every change of a feed (`path`, a workspace's or every workspace's) after the cursor, read `page` at a
/// time until it says nothing more is ready; and the cursor to read on from.
async fn read_pages(
    app: &TestApp,
    path: &str,
    mut after: Option<String>,
    page: usize,
) -> (Vec<Value>, Option<String>) {
    let mut changes = Vec::new();
    loop {
        let cursor = after
            .as_deref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (status, body) = app
            .op(Method::GET, &format!("{path}?limit={page}{cursor}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        changes.extend(body["data"].as_array().unwrap().iter().cloned());
        after = body["list_metadata"]["after"].as_str().map(String::from);
        if body["list_metadata"]["has_more"] == false {
            return (changes, after);
        }
    }
}

/// Every change of a workspace after `after`, read `page` at a time; and the cursor to read on from.
pub(crate) async fn read_feed(
    app: &TestApp,
    ws: &str,
    after: Option<String>,
    page: usize,
) -> (Vec<Value>, Option<String>) {
    read_pages(
        app,
        &format!("/api/v1/workspaces/{ws}/changes"),
        after,
        page,
    )
    .await
}

/// Applies a workspace's changes, read from its start; checks their positions run 1, 2, 3… on the way.
pub(crate) fn rebuild(changes: &[Value]) -> State {
    let mut state = State::default();
    for (i, change) in changes.iter().enumerate() {
        assert_eq!(change["position"], json!(i + 1), "{change}");
        let kind = change["type"].as_str().unwrap();
        match kind {
            "member.removed" => {
                state
                    .members
                    .remove(change["member"]["id"].as_str().unwrap());
            }
            _ if kind.starts_with("member.") => {
                let member = &change["member"];
                state
                    .members
                    .insert(member["id"].as_str().unwrap().to_string(), member.clone());
            }
            "team.created" | "team.renamed" => {
                let team = &change["team"];
                state.teams.insert(
                    team["id"].as_str().unwrap().to_string(),
                    team["name"].as_str().unwrap().to_string(),
                );
            }
            "team.deleted" => {
                let team = change["team"]["id"].as_str().unwrap();
                state.teams.remove(team);
                state.team_members.remove(team);
            }
            _ => {
                let membership = &change["team_member"];
                let team = membership["team_id"].as_str().unwrap().to_string();
                let member = membership["member_id"].as_str().unwrap().to_string();
                let sources = sorted_sources(&membership["sources"]);
                let roster = state.team_members.entry(team.clone()).or_default();
                if sources.is_empty() {
                    roster.remove(&member);
                } else {
                    roster.insert(member, sources);
                }
                if roster.is_empty() {
                    state.team_members.remove(&team);
                }
            }
        }
    }
    state
}

/// What the API lists for a workspace (of a member, what the feed carries: not where its role comes
/// from, its directory user's attributes nor what the caller may do, which the API derives when it
/// shows a member).
pub(crate) async fn listed(app: &TestApp, ws: &str) -> State {
    let members = app
        .members(ws)
        .await
        .into_iter()
        .map(|mut m| {
            let shown = m.as_object_mut().unwrap();
            for derived in ["role_source", "attributes", "actions", "groups"] {
                shown.remove(derived);
            }
            (m["id"].as_str().unwrap().to_string(), m)
        })
        .collect();
    let (status, teams) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/teams?limit=1000"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{teams}");
    let mut state = State {
        members,
        ..State::default()
    };
    for team in teams["data"].as_array().unwrap() {
        let id = team["id"].as_str().unwrap().to_string();
        state
            .teams
            .insert(id.clone(), team["name"].as_str().unwrap().to_string());
        let (status, roster) = app
            .op(
                Method::GET,
                &format!("/api/v1/workspaces/{ws}/teams/{id}/members?limit=1000"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{roster}");
        let roster: BTreeMap<String, Vec<String>> = roster["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["member_id"].as_str().unwrap().to_string(),
                    sorted_sources(&m["sources"]),
                )
            })
            .collect();
        if !roster.is_empty() {
            state.team_members.insert(id, roster);
        }
    }
    state
}

/// Reads a workspace's whole feed and checks that applying it gives what the API lists.
pub(crate) async fn assert_feed_rebuilds(app: &TestApp, ws: &str) -> Vec<Value> {
    let (changes, _) = read_feed(app, ws, None, 7).await;
    assert_eq!(rebuild(&changes), listed(app, ws).await);
    changes
}

fn kinds(changes: &[Value]) -> Vec<&str> {
    changes
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect()
}

async fn each_change_is_named_with_its_cause(app: TestApp) {
    let org = Org::new(&app).await;
    let provisioned = org.created("ada");
    app.deliver(&[provisioned.clone(), org.group_created("eng")])
        .await;
    app.deliver(&[org.added("ada", "eng")]).await;
    let team = new_team(&app, &org, "Engineering").await;
    link(&app, &org, &team, "eng").await;
    let (status, body) = app
        .op(
            Method::PUT,
            &org.path("/role-mappings"),
            Some(json!([{ "group_id": org.group_id("eng"), "role": "admin" }])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deactivated = org.state("ada", "inactive");
    app.deliver(std::slice::from_ref(&deactivated)).await;
    app.deliver(&[org.state("ada", "active")]).await;
    let (status, body) = app
        .op(
            Method::PATCH,
            &org.path(&format!("/teams/{team}")),
            Some(json!({ "name": "Platform" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let changes = assert_feed_rebuilds(&app, &org.ws).await;
    assert_eq!(
        kinds(&changes),
        [
            "member.provisioned",
            "team.created",
            "team.member_added",
            "member.role_changed",
            // Deactivated: access ends, then the team goes with it (a deprovisioned member keeps no
            // group's source); back, and the group brings them into the team again.
            "member.deprovisioned",
            "team.member_removed",
            "member.reprovisioned",
            "team.member_added",
            "team.renamed",
        ],
        "{changes:#?}"
    );
    let first = &changes[0];
    assert_eq!(first["cause"]["type"], "event");
    assert_eq!(first["cause"]["id"], provisioned["id"]);
    assert_eq!(first["member"]["email"], "ada@example.com");
    assert_eq!(first["workspace_id"], org.ws.as_str());
    let joined = &changes[2];
    assert_eq!(joined["cause"]["type"], "operator");
    assert_eq!(
        joined["source_added"],
        json!({ "type": "directory_group", "group_id": org.group_id("eng") })
    );
    assert_eq!(joined["team_member"]["team_id"], team.as_str());
    let role = &changes[3];
    assert_eq!(role["changes"]["role"]["to"], "admin");
    assert_eq!(role["member"]["role"], "admin");
    let gone = changes
        .iter()
        .find(|c| c["type"] == "member.deprovisioned")
        .unwrap();
    assert_eq!(gone["cause"]["id"], deactivated["id"]);
    assert_eq!(
        gone["changes"]["status"],
        json!({ "from": "active", "to": "deprovisioned" })
    );
    assert_eq!(
        changes.last().unwrap()["changes"]["name"],
        json!({ "from": "Engineering", "to": "Platform" })
    );

    // Read on from the end: nothing yet, and the cursor stays where it was.
    let end = changes.len().to_string();
    let (status, body) = app
        .op(
            Method::GET,
            &org.path(&format!("/changes?after={end}")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!([]));
    assert_eq!(body["list_metadata"]["after"], end.as_str());
    assert_eq!(body["list_metadata"]["has_more"], false);
}

async fn an_admin_reads_its_own_workspace_and_the_operator_every_one(app: TestApp) {
    let one = Org::new(&app).await;
    let other = Org::new(&app).await;
    app.deliver(&[one.created("ada"), other.created("bob")])
        .await;
    let token = app.admin_token(&one.ws).await;
    let (status, own) = app
        .call(Method::GET, &one.path("/changes"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    assert_eq!(own["data"][0]["member"]["email"], "ada@example.com");
    let (status, body) = app
        .call(Method::GET, &other.path("/changes"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app
        .call(Method::GET, "/api/v1/changes", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let everyone = read_all_workspaces(&app, None).await;
    let emails: BTreeSet<&str> = everyone
        .iter()
        .filter_map(|c| c["member"]["email"].as_str())
        .collect();
    assert_eq!(
        emails,
        BTreeSet::from(["ada@example.com", "bob@example.com"])
    );

    for bad in ["x", "-1", "99"] {
        let (status, body) = app
            .op(
                Method::GET,
                &one.path(&format!("/changes?after={bad}")),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "after={bad}: {body}");
        assert_eq!(body["code"], "invalid_parameter");
    }
    let (status, body) = app.op(Method::GET, "/api/v1/changes?after=a.b", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Every workspace's changes after `after`, read until the feed says nothing more is ready.
async fn read_all_workspaces(app: &TestApp, after: Option<String>) -> Vec<Value> {
    read_all_from(app, after).await.0
}

async fn read_all_from(app: &TestApp, after: Option<String>) -> (Vec<Value>, Option<String>) {
    read_pages(app, "/api/v1/changes", after, 5).await
}

/// Makes a workspace's first `count` changes 40 days old and prunes with 30 days' retention.
pub(crate) fn prune_first_changes(app: &TestApp, ws: &str, count: i64) {
    app.db
        .write(|conn| {
            use diesel::prelude::*;
            use rollcall::db::schema::changes;
            let long_ago = rollcall::workos::timestamp::now() - chrono::TimeDelta::days(40);
            rollcall::on_backend!(conn, |c| diesel::update(
                changes::table
                    .filter(changes::workspace_id.eq(ws))
                    .filter(changes::position.le(count))
            )
            .set(changes::occurred_at.eq(long_ago))
            .execute(c))
            .map_err(rollcall::db::DbError::from)
        })
        .unwrap();
    let pruned =
        rollcall::intake::retention::prune(&app.db, Duration::from_secs(30 * 86_400)).unwrap();
    assert_eq!(pruned.changes, count as usize);
}

async fn a_cursor_behind_retention_is_told_to_list_again(app: TestApp) {
    let org = Org::new(&app).await;
    app.deliver(&[org.created("ada"), org.created("bob"), org.created("cy")])
        .await;
    let (changes, _) = read_feed(&app, &org.ws, None, 100).await;
    assert_eq!(changes.len(), 3);
    // The first two changes are 40 days old; retention is 30 days.
    prune_first_changes(&app, &org.ws, 2);

    for after in ["0", "1"] {
        let (status, body) = app
            .op(
                Method::GET,
                &org.path(&format!("/changes?after={after}")),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::GONE, "after={after}: {body}");
        assert_eq!(body["code"], "cursor_expired");
        assert_eq!(body["resume_after"], "2");
    }
    // From the cursor it names, or from the oldest kept, the feed goes on.
    let (status, body) = app
        .op(Method::GET, &org.path("/changes?after=2"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["member"]["email"], "cy@example.com");
    let (status, body) = app.op(Method::GET, &org.path("/changes"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["position"], 3);

    // Across workspaces: a cursor from before the pruned changes is told the same.
    let (status, body) = app.op(Method::GET, "/api/v1/changes?after=0", None).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["code"], "cursor_expired");
    let resume = body["resume_after"].as_str().unwrap().to_string();
    let rest = read_all_workspaces(&app, Some(resume)).await;
    assert!(
        rest.iter()
            .any(|c| c["member"]["email"] == "cy@example.com"),
        "{rest:#?}"
    );
    assert!(!rest
        .iter()
        .any(|c| c["member"]["email"] == "ada@example.com"));
}

async fn concurrent_writers_never_leave_a_reader_a_gap(app: TestApp) {
    const TEAMS: usize = 15;
    let app = std::sync::Arc::new(app);
    let one = app.synced_workspace(&crate::broker::unique()).await;
    let other = app.synced_workspace(&crate::broker::unique()).await;
    let (start_changes, start) = read_all_from(&app, None).await;
    drop(start_changes);
    let mut writers = Vec::new();
    for (w, ws) in [&one, &one, &other, &other].into_iter().enumerate() {
        let app = app.clone();
        let ws = ws.clone();
        writers.push(tokio::spawn(async move {
            for t in 0..TEAMS {
                let (status, body) = app
                    .op(
                        Method::POST,
                        &format!("/api/v1/workspaces/{ws}/teams"),
                        Some(json!({ "name": format!("Team {w}-{t}") })),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
            }
        }));
    }
    // A reader follows the feed across workspaces while the writers write.
    let reader = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut seen: Vec<Value> = Vec::new();
            let mut after = start;
            while seen.len() < 4 * TEAMS {
                let (changes, next) = read_all_from(&app, after).await;
                seen.extend(changes);
                after = next;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reader saw every change within a minute")
        .unwrap();
    assert_eq!(seen.len(), 4 * TEAMS, "nothing read twice");
    for ws in [&one, &other] {
        let positions: Vec<i64> = seen
            .iter()
            .filter(|c| c["workspace_id"] == ws.as_str())
            .map(|c| c["position"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = (1..=2 * TEAMS as i64).collect();
        assert_eq!(positions, expected, "in order, none skipped");
    }
}

async fn a_change_is_read_across_workspaces_only_after_older_writes_end(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let early = app.synced_workspace(&crate::broker::unique()).await;
    let late = Org::new(&app).await;
    let (_, start) = read_all_from(&app, None).await;
    // A write of `early` that has made its change but not committed yet.
    let held = HeldChange::open(&app.db, &early);
    let later = {
        let app = app.clone();
        let path = late.path("/teams");
        tokio::spawn(async move {
            app.op(Method::POST, &path, Some(json!({ "name": "Later" })))
                .await
        })
    };
    if app.db.target().backend() == "postgresql" {
        // The later write commits at once; its own workspace's feed shows it, the feed across
        // workspaces does not while the older write is open.
        let (status, body) = later.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (own, _) = read_feed(&app, &late.ws, None, 100).await;
        assert_eq!(kinds(&own), ["team.created"]);
        let across = read_all_workspaces(&app, start.clone()).await;
        assert_eq!(across, Vec::<Value>::new());
        held.commit();
    } else {
        // One writer: the later write waits for the older one to commit.
        let committed = std::thread::spawn(move || held.commit());
        let (status, body) = later.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        committed.join().unwrap();
    }
    let across = read_all_workspaces(&app, start).await;
    let names: Vec<&str> = across
        .iter()
        .map(|c| c["team"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Held", "Later"]);
}

/// A write of a workspace that has made a change (a team named "Held") and waits, uncommitted, until
/// [`HeldChange::commit`].
struct HeldChange {
    commit: std::sync::mpsc::Sender<()>,
    writer: std::thread::JoinHandle<()>,
}

impl HeldChange {
    /// Returns once the change is made.
    fn open(db: &rollcall::db::Database, workspace_id: &str) -> HeldChange {
        let (made, made_rx) = std::sync::mpsc::channel();
        let (commit, commit_rx) = std::sync::mpsc::channel::<()>();
        let db = db.clone();
        let held_ws = workspace_id.to_string();
        let writer = std::thread::spawn(move || {
            db.write_workspace(&held_ws, |conn| {
                rollcall::audit::record(
                    conn,
                    &Cause::BootstrapOperator,
                    AuditRecord {
                        workspace_id: &held_ws,
                        action: "team.created",
                        subject_type: "team",
                        subject_id: "team_held",
                        before: None,
                        after: Some(json!({ "id": "team_held", "name": "Held" })),
                    },
                )?;
                made.send(()).unwrap();
                commit_rx.recv().unwrap();
                Ok::<_, rollcall::db::DbError>(())
            })
            .unwrap();
        });
        made_rx.recv().unwrap();
        HeldChange { commit, writer }
    }

    /// Commits the write and waits for it to end.
    fn commit(self) {
        self.commit.send(()).unwrap();
        self.writer.join().unwrap();
    }
}

/// On PostgreSQL the feed across workspaces waits only for Rollcall's own open writes of this schema:
/// not for another deployment's in another schema of the same database, nor for someone else's
/// transaction on the same server (its own open writes do: see
/// `a_change_is_read_across_workspaces_only_after_older_writes_end`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_feed_across_workspaces_waits_only_for_its_own_writes() {
    use diesel::{Connection, RunQueryDsl};
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await;
    let neighbour = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await;
    let theirs = Org::new(&neighbour).await;
    let one = Org::new(&app).await;
    // Both older than the change read below: a write of another schema's Rollcall, and a write of a
    // program that is not Rollcall on the same database.
    let neighbours_write = HeldChange::open(&neighbour.db, &theirs.ws);
    let mut other_program =
        diesel::PgConnection::establish(&crate::helpers::postgres_url()).expect("connect");
    diesel::sql_query("BEGIN")
        .execute(&mut other_program)
        .unwrap();
    diesel::sql_query("SELECT pg_current_xact_id()")
        .execute(&mut other_program)
        .unwrap();

    app.deliver(&[one.created("ada")]).await;
    let emails: Vec<Value> = read_all_workspaces(&app, None)
        .await
        .iter()
        .map(|c| c["member"]["email"].clone())
        .collect();
    assert_eq!(emails, [json!("ada@example.com")]);

    neighbours_write.commit();
    diesel::sql_query("ROLLBACK")
        .execute(&mut other_program)
        .unwrap();
}
