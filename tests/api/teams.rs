//! Teams fed by directory groups, role mappings and the audit log (rules 8–11, 17).

use crate::broker::{at, event, TestDirectory};
use crate::helpers::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::cell::Cell;

/// A directory attached to a synced workspace, with a clock that only moves forward.
pub(crate) struct Org {
    pub(crate) dir: TestDirectory,
    pub(crate) ws: String,
    minute: Cell<u32>,
}

impl Org {
    pub(crate) async fn new(app: &TestApp) -> Org {
        let dir = TestDirectory::new();
        let ws = app.create_workspace(&dir.organization_id, "growth").await;
        Org::attached(app, dir, ws).await
    }

    /// Turns directory sync on for `ws`, the workspace of `dir`'s organization, and activates `dir`.
    pub(crate) async fn attached(app: &TestApp, dir: TestDirectory, ws: String) -> Org {
        app.set_sync(&ws, true).await;
        app.deliver(&[event("dsync.activated", dir.object(&at(0)), &at(0))])
            .await;
        Org {
            dir,
            ws,
            minute: Cell::new(1),
        }
    }

    pub(crate) fn tick(&self) -> String {
        self.minute.set(self.minute.get() + 1);
        at(self.minute.get())
    }

    pub(crate) fn user_id(&self, name: &str) -> String {
        format!("directory_user_{name}_{}", self.dir.tag)
    }

    pub(crate) fn group_id(&self, name: &str) -> String {
        format!("directory_group_{name}_{}", self.dir.tag)
    }

    pub(crate) fn user(&self, name: &str, state: &str, updated_at: &str) -> Value {
        self.dir.user(
            &self.user_id(name),
            &format!("idp-{name}"),
            Some(&format!("{name}@example.com")),
            name,
            state,
            updated_at,
        )
    }

    pub(crate) fn group(&self, name: &str) -> Value {
        self.dir.group(&self.group_id(name), name, &at(1))
    }

    pub(crate) fn created(&self, name: &str) -> Value {
        let t = self.tick();
        event("dsync.user.created", self.user(name, "active", &t), &t)
    }

    pub(crate) fn state(&self, name: &str, state: &str) -> Value {
        let t = self.tick();
        event("dsync.user.updated", self.user(name, state, &t), &t)
    }

    pub(crate) fn group_created(&self, name: &str) -> Value {
        event("dsync.group.created", self.group(name), &self.tick())
    }

    pub(crate) fn added(&self, user: &str, group: &str) -> Value {
        let data = self
            .dir
            .membership(&self.user(user, "active", &at(1)), &self.group(group));
        event("dsync.group.user_added", data, &self.tick())
    }

    pub(crate) fn removed(&self, user: &str, group: &str) -> Value {
        let data = self
            .dir
            .membership(&self.user(user, "active", &at(1)), &self.group(group));
        event("dsync.group.user_removed", data, &self.tick())
    }

    pub(crate) fn group_deleted(&self, name: &str) -> Value {
        let t = self.tick();
        event(
            "dsync.group.deleted",
            self.dir.group(&self.group_id(name), name, &t),
            &t,
        )
    }

    pub(crate) fn path(&self, rest: &str) -> String {
        format!("/api/v1/workspaces/{}{rest}", self.ws)
    }
}

pub(crate) async fn new_team(app: &TestApp, org: &Org, name: &str) -> String {
    let (status, team) = app
        .op(
            Method::POST,
            &org.path("/teams"),
            Some(json!({ "name": name })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    team["id"].as_str().unwrap().to_string()
}

pub(crate) async fn link(app: &TestApp, org: &Org, team: &str, group: &str) -> Value {
    let (status, body) = app
        .op(
            Method::POST,
            &org.path(&format!("/teams/{team}/directory-groups")),
            Some(json!({ "group_id": org.group_id(group) })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

pub(crate) async fn unlink(app: &TestApp, org: &Org, team: &str, group: &str, members: &str) {
    let (status, body) = app
        .op(
            Method::DELETE,
            &org.path(&format!(
                "/teams/{team}/directory-groups/{}?members={members}",
                org.group_id(group)
            )),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// Each team member's email with their sources, written `manual` or the group's name.
async fn roster(app: &TestApp, org: &Org, team: &str) -> Vec<(String, Vec<String>)> {
    let (status, body) = app
        .op(
            Method::GET,
            &org.path(&format!("/teams/{team}/members?limit=1000")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut found: Vec<(String, Vec<String>)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut sources: Vec<String> = m["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| match s["type"].as_str().unwrap() {
                    "manual" => "manual".to_string(),
                    _ => s["group_id"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("directory_group_")
                        .split('_')
                        .next()
                        .unwrap()
                        .to_string(),
                })
                .collect();
            sources.sort();
            (
                m["email"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches("@example.com")
                    .to_string(),
                sources,
            )
        })
        .collect();
    found.sort();
    found
}

fn r(entries: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    entries
        .iter()
        .map(|(e, s)| (e.to_string(), s.iter().map(|s| s.to_string()).collect()))
        .collect()
}

async fn member_id(app: &TestApp, org: &Org, name: &str) -> String {
    app.member(&org.ws, &format!("{name}@example.com"))
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn audit_actions(app: &TestApp, org: &Org) -> Vec<Value> {
    let (status, body) = app
        .op(Method::GET, &org.path("/audit-log?limit=1000"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].as_array().unwrap().clone()
}

async fn linking_follows_the_group(app: TestApp) {
    let org = Org::new(&app).await;
    app.deliver(&[
        org.created("ann"),
        org.created("bob"),
        org.created("cat"),
        org.group_created("eng"),
        org.added("ann", "eng"),
        org.added("bob", "eng"),
    ])
    .await;
    let team = new_team(&app, &org, "Engineering").await;
    let linked = link(&app, &org, &team, "eng").await;
    assert_eq!(linked["members_added"], 2);
    assert_eq!(
        roster(&app, &org, &team).await,
        r(&[("ann", &["eng"]), ("bob", &["eng"])])
    );
    app.deliver(&[org.added("cat", "eng"), org.removed("ann", "eng")])
        .await;
    assert_eq!(
        roster(&app, &org, &team).await,
        r(&[("bob", &["eng"]), ("cat", &["eng"])])
    );
    let (_, shown) = app
        .op(Method::GET, &org.path(&format!("/teams/{team}")), None)
        .await;
    assert_eq!(shown["member_count"], 2);
    assert_eq!(shown["linked_group_ids"], json!([org.group_id("eng")]));
    let (_, groups) = app
        .op(Method::GET, &org.path("/directory-groups"), None)
        .await;
    assert_eq!(groups["data"][0]["member_count"], 2);
    assert_eq!(groups["data"][0]["linked_team_ids"], json!([team]));
}

async fn unlinking_removes_only_those_with_no_other_source(app: TestApp) {
    let org = Org::new(&app).await;
    app.deliver(&[
        org.created("dee"),
        org.created("eve"),
        org.group_created("eng"),
        org.group_created("ops"),
    ])
    .await;
    app.deliver(&[
        org.added("dee", "eng"),
        org.added("dee", "ops"),
        org.added("eve", "eng"),
    ])
    .await;
    let team = new_team(&app, &org, "Platform").await;
    link(&app, &org, &team, "eng").await;
    link(&app, &org, &team, "ops").await;
    let dee = member_id(&app, &org, "dee").await;
    let (status, _) = app
        .op(
            Method::POST,
            &org.path(&format!("/teams/{team}/members")),
            Some(json!({ "member_id": dee })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        roster(&app, &org, &team).await,
        r(&[("dee", &["eng", "manual", "ops"]), ("eve", &["eng"])])
    );
    // The preview counts it beforehand: eve leaves, dee stays through ops and by hand.
    let preview = |group: &str| {
        let path = org.path(&format!(
            "/teams/{team}/directory-groups/{}/unlink-preview",
            org.group_id(group)
        ));
        let app = &app;
        async move {
            let (status, body) = app.op(Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    assert_eq!(
        preview("eng").await,
        json!({ "through_group": 2, "leaving_on_remove": 1, "staying_on_remove": 1 })
    );
    unlink(&app, &org, &team, "eng", "remove").await;
    assert_eq!(
        preview("ops").await,
        json!({ "through_group": 1, "leaving_on_remove": 0, "staying_on_remove": 1 })
    );
    assert_eq!(
        roster(&app, &org, &team).await,
        r(&[("dee", &["manual", "ops"])])
    );
    unlink(&app, &org, &team, "ops", "remove").await;
    assert_eq!(roster(&app, &org, &team).await, r(&[("dee", &["manual"])]));
    let (status, _) = app
        .op(
            Method::DELETE,
            &org.path(&format!("/teams/{team}/members/{dee}")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(roster(&app, &org, &team).await.is_empty());
    // Only a manual source can be removed by hand.
    let (status, _) = app
        .op(
            Method::DELETE,
            &org.path(&format!("/teams/{team}/members/{dee}")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn unlinking_with_keep_turns_group_sources_manual(app: TestApp) {
    let org = Org::new(&app).await;
    app.deliver(&[
        org.created("fay"),
        org.group_created("eng"),
        org.added("fay", "eng"),
    ])
    .await;
    let team = new_team(&app, &org, "Keepers").await;
    link(&app, &org, &team, "eng").await;
    unlink(&app, &org, &team, "eng", "keep").await;
    assert_eq!(roster(&app, &org, &team).await, r(&[("fay", &["manual"])]));
    // The group no longer moves her.
    app.deliver(&[org.removed("fay", "eng")]).await;
    assert_eq!(roster(&app, &org, &team).await, r(&[("fay", &["manual"])]));
    let actions: Vec<Value> = audit_actions(&app, &org).await;
    assert!(actions
        .iter()
        .any(|a| a["action"] == "team_member.source_changed"
            && a["after"]["source"]["type"] == "manual"));
}

async fn a_deleted_group_leaves_its_teams(app: TestApp) {
    let org = Org::new(&app).await;
    app.deliver(&[
        org.created("gus"),
        org.created("hal"),
        org.group_created("eng"),
        org.group_created("ops"),
    ])
    .await;
    app.deliver(&[
        org.added("gus", "eng"),
        org.added("hal", "eng"),
        org.added("hal", "ops"),
    ])
    .await;
    let team = new_team(&app, &org, "Both").await;
    link(&app, &org, &team, "eng").await;
    link(&app, &org, &team, "ops").await;
    let (status, _) = app
        .op(
            Method::PUT,
            &org.path("/role-mappings"),
            Some(json!([{ "group_id": org.group_id("eng"), "role": "admin" }])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.member(&org.ws, "gus@example.com").await.unwrap()["role"],
        "admin"
    );
    app.deliver(&[org.group_deleted("eng")]).await;
    assert_eq!(roster(&app, &org, &team).await, r(&[("hal", &["ops"])]));
    let (_, shown) = app
        .op(Method::GET, &org.path(&format!("/teams/{team}")), None)
        .await;
    assert_eq!(shown["linked_group_ids"], json!([org.group_id("ops")]));
    let (_, mappings) = app.op(Method::GET, &org.path("/role-mappings"), None).await;
    assert_eq!(mappings["data"], json!([]));
    // The group held the last mapping: the admin role it gave does not outlive it.
    assert_eq!(
        app.member(&org.ws, "gus@example.com").await.unwrap()["role"],
        "viewer"
    );
}

async fn deprovisioning_empties_teams_and_reprovisioning_restores_groups(app: TestApp) {
    let org = Org::new(&app).await;
    app.deliver(&[
        org.created("ida"),
        org.group_created("eng"),
        org.added("ida", "eng"),
    ])
    .await;
    let team = new_team(&app, &org, "Eng").await;
    let side = new_team(&app, &org, "Side project").await;
    link(&app, &org, &team, "eng").await;
    let ida = member_id(&app, &org, "ida").await;
    for t in [&team, &side] {
        let (status, _) = app
            .op(
                Method::POST,
                &org.path(&format!("/teams/{t}/members")),
                Some(json!({ "member_id": ida })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    app.deliver(&[org.state("ida", "inactive")]).await;
    assert!(roster(&app, &org, &team).await.is_empty());
    assert!(roster(&app, &org, &side).await.is_empty());
    let removed: Vec<Value> = audit_actions(&app, &org)
        .await
        .into_iter()
        .filter(|a| a["action"] == "team_member.source_removed" && a["subject_id"] == ida.as_str())
        .collect();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(removed.iter().all(|a| a["cause"]["type"] == "event"));
    assert_eq!(
        removed
            .iter()
            .filter(|a| a["before"]["source"]["type"] == "manual")
            .count(),
        2
    );
    // A deprovisioned member cannot be added by hand.
    let (status, body) = app
        .op(
            Method::POST,
            &org.path(&format!("/teams/{side}/members")),
            Some(json!({ "member_id": ida })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("member_deprovisioned"))
    );
    app.deliver(&[org.state("ida", "active")]).await;
    assert_eq!(roster(&app, &org, &team).await, r(&[("ida", &["eng"])]));
    assert!(
        roster(&app, &org, &side).await.is_empty(),
        "manual sources are not restored"
    );
}

/// A membership event that also changes its user is one change to the member: their teams follow the
/// state after both, and nothing is added only to be taken away again.
async fn a_membership_event_changes_a_members_teams_once(app: TestApp) {
    let org = Org::new(&app).await;
    app.deliver(&[
        org.created("kim"),
        org.group_created("eng"),
        org.added("kim", "eng"),
    ])
    .await;
    let team = new_team(&app, &org, "Eng").await;
    link(&app, &org, &team, "eng").await;
    app.deliver(&[org.state("kim", "inactive")]).await;
    assert!(roster(&app, &org, &team).await.is_empty());
    // Kim returns, in the same event that takes her out of the group.
    let t = org.tick();
    let returning = org
        .dir
        .membership(&org.user("kim", "active", &t), &org.group("eng"));
    app.deliver(&[event("dsync.group.user_removed", returning, &t)])
        .await;
    let kim = app.member(&org.ws, "kim@example.com").await.unwrap();
    assert_eq!(kim["status"], "active");
    assert!(roster(&app, &org, &team).await.is_empty());
    let sources: Vec<String> = audit_actions(&app, &org)
        .await
        .into_iter()
        .filter(|a| a["subject_id"] == kim["id"] && a["subject_type"] == "team_member")
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect();
    // Added by the link, removed on deprovisioning; the returning event adds and removes none.
    assert_eq!(
        sources,
        ["team_member.source_removed", "team_member.source_added"],
        "newest first"
    );
}

/// A deleted directory takes its groups' mappings with it: a member's role changes once, to the default,
/// not through each mapping left along the way.
async fn a_deleted_directory_changes_a_role_once(app: TestApp) {
    let org = Org::new(&app).await;
    app.deliver(&[
        org.created("lee"),
        org.group_created("leads"),
        org.group_created("eng"),
    ])
    .await;
    app.deliver(&[org.added("lee", "leads"), org.added("lee", "eng")])
        .await;
    let mappings = json!([
        { "group_id": org.group_id("leads"), "role": "admin" },
        { "group_id": org.group_id("eng"), "role": "builder" },
    ]);
    let (status, body) = app
        .op(Method::PUT, &org.path("/role-mappings"), Some(mappings))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let team = new_team(&app, &org, "Engineering").await;
    link(&app, &org, &team, "eng").await;
    assert_eq!(
        roster(&app, &org, &team).await,
        [("lee".into(), vec!["eng".into()])]
    );
    let t = org.tick();
    app.deliver(&[event("dsync.deleted", org.dir.object(&t), &t)])
        .await;
    let lee = app.member(&org.ws, "lee@example.com").await.unwrap();
    assert_eq!(lee["status"], "deprovisioned");
    assert_eq!(lee["role"], "viewer");
    // Rule 4: the deleted directory's groups drop their links, audited with the event as cause; rule 3:
    // its deprovisioned members leave the team.
    let (_, shown) = app
        .op(Method::GET, &org.path(&format!("/teams/{team}")), None)
        .await;
    assert_eq!(shown["linked_group_ids"], json!([]), "{shown}");
    assert_eq!(roster(&app, &org, &team).await, []);
    let unlinked: Vec<Value> = audit_actions(&app, &org)
        .await
        .into_iter()
        .filter(|a| a["action"] == "team_link.removed")
        .collect();
    assert_eq!(unlinked.len(), 1, "{unlinked:?}");
    assert_eq!(unlinked[0]["cause"]["type"], "event", "{unlinked:?}");
    let changes: Vec<Value> = audit_actions(&app, &org)
        .await
        .into_iter()
        .filter(|a| {
            a["action"] == "member.role_changed"
                && a["subject_id"] == lee["id"]
                && a["cause"]["type"] == "event"
        })
        .collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["before"]["role"], "admin");
}

async fn roles_follow_mappings_and_groups(app: TestApp) {
    let org = Org::new(&app).await;
    app.deliver(&[
        org.created("jo"),
        org.created("kit"),
        org.group_created("eng"),
        org.group_created("leads"),
    ])
    .await;
    app.deliver(&[org.added("jo", "eng"), org.added("kit", "eng")])
        .await;
    let mappings = json!([
        { "group_id": org.group_id("eng"), "role": "builder" },
        { "group_id": org.group_id("leads"), "role": "admin" },
    ]);
    let (status, body) = app
        .op(Method::PUT, &org.path("/role-mappings"), Some(mappings))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let role = |name: &'static str| {
        let app = &app;
        let org = &org;
        async move {
            app.member(&org.ws, &format!("{name}@example.com"))
                .await
                .unwrap()["role"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(role("jo").await, "builder");
    app.deliver(&[org.added("jo", "leads")]).await;
    assert_eq!(role("jo").await, "admin", "the highest mapped role wins");
    app.deliver(&[org.removed("jo", "leads"), org.removed("jo", "eng")])
        .await;
    assert_eq!(
        role("jo").await,
        "viewer",
        "no mapped group: the default role"
    );
    // Manual role edits of directory members are refused while mappings exist.
    let kit = member_id(&app, &org, "kit").await;
    let (status, body) = app
        .op(
            Method::PATCH,
            &org.path(&format!("/members/{kit}")),
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("managed_by_directory_sync"))
    );
    // The last mapping gone, the roles mappings gave return to the default: no mapped privilege stays.
    assert_eq!(role("kit").await, "builder");
    app.op(Method::PUT, &org.path("/role-mappings"), Some(json!([])))
        .await;
    assert_eq!(role("kit").await, "viewer", "back to the default role");
    // An owner is never touched by the directory.
    let (status, _) = app
        .op(
            Method::PATCH,
            &org.path(&format!("/members/{kit}")),
            Some(json!({ "role": "owner" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.op(
        Method::PUT,
        &org.path("/role-mappings"),
        Some(json!([{ "group_id": org.group_id("eng"), "role": "viewer" }])),
    )
    .await;
    app.deliver(&[org.added("kit", "leads"), org.removed("kit", "eng")])
        .await;
    assert_eq!(role("kit").await, "owner");
    for bad in [
        json!([{ "group_id": org.group_id("eng"), "role": "owner" }]),
        json!([{ "group_id": org.group_id("eng"), "role": "boss" }]),
    ] {
        let (status, body) = app
            .op(Method::PUT, &org.path("/role-mappings"), Some(bad))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_field"))
        );
    }
    let (status, body) = app
        .op(
            Method::PUT,
            &org.path("/role-mappings"),
            Some(json!([{ "group_id": "directory_group_elsewhere", "role": "admin" }])),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_group"))
    );
}

async fn linking_rules_answer_with_their_codes(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.create_workspace(&dir.organization_id, "growth").await;
    let org = Org {
        dir,
        ws,
        minute: Cell::new(1),
    };
    let team = new_team(&app, &org, "Rules").await;
    let post_link = |group: String| {
        let app = &app;
        let path = org.path(&format!("/teams/{team}/directory-groups"));
        async move {
            app.op(Method::POST, &path, Some(json!({ "group_id": group })))
                .await
        }
    };
    // The workspace says beforehand whether a group can be linked, in the refusal's words.
    let linking = || {
        let app = &app;
        let path = format!("/api/v1/workspaces/{}", org.ws);
        async move { app.op(Method::GET, &path, None).await.1["linking"].clone() }
    };
    let (status, body) = post_link(org.group_id("eng")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("directory_sync_inactive"))
    );
    assert_eq!(
        linking().await,
        json!({ "allowed": false, "reason": body["detail"] })
    );
    app.set_sync(&org.ws, true).await;
    let (status, body) = post_link(org.group_id("eng")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_directory_groups"))
    );
    assert_eq!(
        linking().await,
        json!({ "allowed": false, "reason": body["detail"] })
    );
    app.deliver(&[
        event("dsync.activated", org.dir.object(&at(0)), &at(0)),
        org.group_created("eng"),
    ])
    .await;
    // A group of another workspace's directory is not found from here.
    let other = Org::new(&app).await;
    app.deliver(&[other.group_created("theirs")]).await;
    let (status, body) = post_link(other.group_id("theirs")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    assert_eq!(linking().await, json!({ "allowed": true, "reason": null }));
    let (status, _) = post_link(org.group_id("eng")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = post_link(org.group_id("eng")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_linked"))
    );
    for query in ["", "?members=maybe"] {
        let (status, body) = app
            .op(
                Method::DELETE,
                &org.path(&format!(
                    "/teams/{team}/directory-groups/{}{query}",
                    org.group_id("eng")
                )),
                None,
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("members_choice_required")),
            "{query}"
        );
    }
    let (status, body) = app
        .op(
            Method::POST,
            &org.path("/teams"),
            Some(json!({ "name": "RULES" })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("team_name_taken"))
    );
    let (status, renamed) = app
        .op(
            Method::PATCH,
            &org.path(&format!("/teams/{team}")),
            Some(json!({ "name": "Renamed" })),
        )
        .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (StatusCode::OK, Some("Renamed"))
    );
    let (status, _) = app
        .op(Method::DELETE, &org.path(&format!("/teams/{team}")), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .op(Method::GET, &org.path(&format!("/teams/{team}")), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn an_admin_cannot_reach_another_workspaces_teams_groups_or_audit_log(app: TestApp) {
    let mine = Org::new(&app).await;
    let theirs = Org::new(&app).await;
    app.deliver(&[
        theirs.created("zed"),
        theirs.group_created("eng"),
        theirs.added("zed", "eng"),
    ])
    .await;
    let team = new_team(&app, &theirs, "Theirs").await;
    link(&app, &theirs, &team, "eng").await;
    let zed = member_id(&app, &theirs, "zed").await;
    let token = app.admin_token(&mine.ws).await;
    let group = theirs.group_id("eng");
    let routes = [
        (Method::GET, "/teams".to_string(), None),
        (
            Method::POST,
            "/teams".to_string(),
            Some(json!({ "name": "x" })),
        ),
        (Method::GET, format!("/teams/{team}"), None),
        (
            Method::PATCH,
            format!("/teams/{team}"),
            Some(json!({ "name": "x" })),
        ),
        (Method::DELETE, format!("/teams/{team}"), None),
        (Method::GET, format!("/teams/{team}/members"), None),
        (
            Method::POST,
            format!("/teams/{team}/members"),
            Some(json!({ "member_id": zed })),
        ),
        (Method::DELETE, format!("/teams/{team}/members/{zed}"), None),
        (Method::GET, format!("/teams/{team}/directory-groups"), None),
        (
            Method::POST,
            format!("/teams/{team}/directory-groups"),
            Some(json!({ "group_id": group })),
        ),
        (
            Method::DELETE,
            format!("/teams/{team}/directory-groups/{group}?members=remove"),
            None,
        ),
        (Method::GET, "/directory-groups".to_string(), None),
        (Method::GET, "/role-mappings".to_string(), None),
        (Method::PUT, "/role-mappings".to_string(), Some(json!([]))),
        (Method::GET, "/audit-log".to_string(), None),
    ];
    for (method, rest, body) in routes {
        let path = theirs.path(&rest);
        let (status, problem) = app.call(method.clone(), &path, Some(&token), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {problem}");
    }
    // Their team through my workspace's path is not found either, and nothing of theirs changed.
    app.deliver(&[mine.group_created("mine")]).await;
    let (status, _) = app
        .call(
            Method::GET,
            &mine.path(&format!("/teams/{team}")),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::POST,
            &mine.path(&format!(
                "/teams/{}/directory-groups",
                new_team(&app, &mine, "Mine").await
            )),
            Some(&token),
            Some(json!({ "group_id": group })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "their group is not linkable from my workspace"
    );
    assert_eq!(roster(&app, &theirs, &team).await, r(&[("zed", &["eng"])]));
    // My own audit log is mine alone.
    let (status, log) = app
        .call(Method::GET, &mine.path("/audit-log"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(log["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["action"] != "team_link.created"));
}

async fn the_audit_log_is_newest_first_with_its_causes(app: TestApp) {
    let org = Org::new(&app).await;
    let created = org.created("max");
    app.deliver(std::slice::from_ref(&created)).await;
    let token = app.admin_token(&org.ws).await;
    let (status, team) = app
        .call(
            Method::POST,
            &org.path("/teams"),
            Some(&token),
            Some(json!({ "name": "Audited" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let entries = audit_actions(&app, &org).await;
    assert_eq!(entries[0]["action"], "team.created");
    assert_eq!(entries[0]["cause"]["type"], "api_token");
    assert_eq!(entries[0]["after"]["name"], "Audited");
    let provisioned = entries
        .iter()
        .find(|e| e["action"] == "member.provisioned")
        .unwrap();
    assert_eq!(
        provisioned["cause"],
        json!({ "type": "event", "id": created["id"] })
    );
    assert_eq!(provisioned["before"], Value::Null);
    assert_eq!(provisioned["after"]["email"], "max@example.com");
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let (_, first) = app
        .op(Method::GET, &org.path("/audit-log?limit=1"), None)
        .await;
    let after = first["list_metadata"]["after"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, second) = app
        .op(
            Method::GET,
            &org.path(&format!("/audit-log?limit=1&after={after}")),
            None,
        )
        .await;
    assert_eq!(second["data"][0]["id"], entries[1]["id"]);
    assert_eq!(team["member_count"], 0);
}

async fn removing_a_member_takes_them_out_of_teams(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.create_workspace(&dir.organization_id, "free").await;
    let org = Org {
        dir,
        ws,
        minute: Cell::new(1),
    };
    let (_, member) = app
        .op(
            Method::POST,
            &org.path("/members"),
            Some(json!({ "email": "ned@example.com" })),
        )
        .await;
    let ned = member["id"].as_str().unwrap().to_string();
    let team = new_team(&app, &org, "Manual").await;
    let (status, shown) = app
        .op(
            Method::POST,
            &org.path(&format!("/teams/{team}/members")),
            Some(json!({ "member_id": ned })),
        )
        .await;
    assert_eq!(
        (status, shown["sources"].clone()),
        (StatusCode::CREATED, json!([{ "type": "manual" }]))
    );
    let (status, _) = app
        .op(
            Method::POST,
            &org.path(&format!("/teams/{team}/members")),
            Some(json!({ "member_id": ned })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "adding again changes nothing");
    let (status, _) = app
        .op(Method::DELETE, &org.path(&format!("/members/{ned}")), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(roster(&app, &org, &team).await.is_empty());
    let (_, shown) = app
        .op(Method::GET, &org.path(&format!("/teams/{team}")), None)
        .await;
    assert_eq!(shown["member_count"], 0);
}

crate::on_both_backends!(
    removing_a_member_takes_them_out_of_teams,
    linking_follows_the_group,
    unlinking_removes_only_those_with_no_other_source,
    unlinking_with_keep_turns_group_sources_manual,
    a_deleted_group_leaves_its_teams,
    deprovisioning_empties_teams_and_reprovisioning_restores_groups,
    a_membership_event_changes_a_members_teams_once,
    a_deleted_directory_changes_a_role_once,
    roles_follow_mappings_and_groups,
    linking_rules_answer_with_their_codes,
    an_admin_cannot_reach_another_workspaces_teams_groups_or_audit_log,
    the_audit_log_is_newest_first_with_its_causes,
);
