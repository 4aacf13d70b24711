//! Roles from the directory: the role slugs the identity provider assigns (`role`, `roles`) decide the
//! roles of a workspace that says so, through its slug table (highest role wins, an unmapped or default
//! slug gives the default role), switched with a preview; each member says where its role comes from,
//! and a role the directory decides is not changed by hand. The attributes the broker sends are shown.

use crate::broker::event;
use crate::helpers::{audit_entries, TestApp};
use crate::teams::Org;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

crate::on_both_backends!(
    roles_follow_the_identity_providers_slugs_once_the_workspace_says_so,
    each_member_says_where_its_role_comes_from_with_group_mappings,
    a_role_changed_without_a_newer_updated_at_follows_the_newer_event,
);

/// A user event of `kind` whose snapshot carries these extra fields (`role`, `roles`, attributes).
fn with_fields(
    org: &Org,
    kind: &str,
    name: &str,
    fields: Value,
    updated_at: &str,
    created_at: &str,
) -> Value {
    let mut user = org.user(name, "active", updated_at);
    for (key, value) in fields.as_object().unwrap() {
        user[key] = value.clone();
    }
    event(kind, user, created_at)
}

/// Each member's role, by email.
async fn roles(app: &TestApp, org: &Org) -> BTreeMap<String, String> {
    app.members(&org.ws)
        .await
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A member as the API shows it, by email.
async fn member(app: &TestApp, org: &Org, email: &str) -> Value {
    let members = app.members(&org.ws).await;
    let found = members.iter().find(|m| m["email"] == email).cloned();
    let listed = found.unwrap_or_else(|| panic!("no member {email} in {members:?}"));
    let (status, shown) = app
        .op(
            Method::GET,
            &org.path(&format!("/members/{}", listed["id"].as_str().unwrap())),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(
        shown, listed,
        "a member is shown alike in the list and on its own"
    );
    shown
}

/// Sets the workspace's role source; it must be accepted.
async fn set_source(app: &TestApp, org: &Org, setting: Value) -> Value {
    let (status, stored) = app
        .op(Method::PUT, &org.path("/role-source"), Some(setting))
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    stored
}

async fn set_role(app: &TestApp, org: &Org, email: &str, role: &str) -> (StatusCode, Value) {
    let id = member(app, org, email).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.op(
        Method::PATCH,
        &org.path(&format!("/members/{id}")),
        Some(json!({ "role": role })),
    )
    .await
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, role)| (format!("{name}@example.com"), role.to_string()))
        .collect()
}

async fn roles_follow_the_identity_providers_slugs_once_the_workspace_says_so(app: TestApp) {
    let org = Org::new(&app).await;
    let t = org.tick();
    app.deliver(&[
        with_fields(
            &org,
            "dsync.user.created",
            "ada",
            json!({ "role": {"slug": "eng-admin"}, "roles": [{"slug": "eng-admin"}],
                    "custom_attributes": {"department": "Engineering", "manager": {"email": "bob@example.com"}},
                    "job_title": "Staff Engineer" }),
            &t,
            &t,
        ),
        with_fields(&org, "dsync.user.created", "bob", json!({ "role": {"slug": "member"} }), &t, &t),
        with_fields(
            &org,
            "dsync.user.created",
            "cy",
            json!({ "role": {"slug": "builder"}, "roles": [{"slug": "builder"}, {"slug": "eng-admin"}] }),
            &t,
            &t,
        ),
        // Shapes the broker never sends are tolerated: nothing is read from them.
        with_fields(&org, "dsync.user.created", "dee", json!({ "role": "admin", "roles": {"slug": 7} }), &t, &t),
        with_fields(&org, "dsync.user.created", "eve", json!({ "roles": [{"slug": "unmapped"}] }), &t, &t),
    ])
    .await;
    let everyone_viewer = expected(&[
        ("ada", "viewer"),
        ("bob", "viewer"),
        ("cy", "viewer"),
        ("dee", "viewer"),
        ("eve", "viewer"),
    ]);
    assert_eq!(roles(&app, &org).await, everyone_viewer);
    let ada = member(&app, &org, "ada@example.com").await;
    assert_eq!(
        ada["attributes"],
        json!({ "department": "Engineering", "manager": {"email": "bob@example.com"}, "job_title": "Staff Engineer" })
    );
    assert_eq!(ada["role_source"], json!({ "type": "default" }));
    assert_eq!(
        member(&app, &org, "dee@example.com").await["attributes"],
        json!({})
    );

    // Bad settings are refused by name.
    for (body, field) in [
        (
            json!({ "source": "directory_roles", "mappings": [{"slug": "boss", "role": "owner"}] }),
            "owner",
        ),
        (
            json!({ "source": "directory_roles", "mappings": [{"slug": "member", "role": "admin"}] }),
            "default slug",
        ),
        (
            json!({ "source": "directory_roles", "mappings": [{"slug": "a", "role": "admin"}, {"slug": "a", "role": "viewer"}] }),
            "twice",
        ),
        (json!({ "source": "someone_else" }), "source"),
        (
            json!({ "source": "directory_roles", "mappings": [{"slug": "a\u{0}b", "role": "admin"}] }),
            "slug",
        ),
    ] {
        let (status, problem) = app
            .op(Method::PUT, &org.path("/role-source"), Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{problem}"
        );
    }

    let setting = json!({ "source": "directory_roles",
                          "mappings": [{"slug": "eng-admin", "role": "admin"}, {"slug": "builder", "role": "builder"}] });
    let audit_before = audit_entries(&app.db);
    let (status, preview) = app
        .op(
            Method::POST,
            &org.path("/role-source/preview"),
            Some(setting.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["total"], 2, "{preview}");
    assert_eq!(
        preview["moves"],
        json!([{ "from": "viewer", "to": "admin", "count": 2 }])
    );
    assert_eq!(
        roles(&app, &org).await,
        everyone_viewer,
        "a preview changes nothing"
    );
    assert_eq!(
        audit_entries(&app.db),
        audit_before,
        "a preview audits nothing"
    );

    let stored = set_source(&app, &org, setting).await;
    assert_eq!(stored["default_slug"], "member");
    let (_, shown) = app.op(Method::GET, &org.path("/role-source"), None).await;
    assert_eq!(shown, stored);
    // The highest role among the mapped slugs; the default slug and unmapped slugs give the default.
    assert_eq!(
        roles(&app, &org).await,
        expected(&[
            ("ada", "admin"),
            ("bob", "viewer"),
            ("cy", "admin"),
            ("dee", "viewer"),
            ("eve", "viewer")
        ])
    );
    assert_eq!(
        member(&app, &org, "ada@example.com").await["role_source"],
        json!({ "type": "directory_role", "slug": "eng-admin" })
    );
    assert_eq!(
        member(&app, &org, "bob@example.com").await["role_source"],
        json!({ "type": "default" })
    );
    let (_, audit) = app
        .op(Method::GET, &org.path("/audit-log?limit=100"), None)
        .await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == "member.role_changed")
            .count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"role_source.changed"), "{actions:?}");

    // The directory decides: a change by hand is refused, naming where the role comes from; the member
    // says so beforehand, in the same words.
    let (status, problem) = set_role(&app, &org, "ada@example.com", "viewer").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "managed_by_directory_sync");
    assert!(
        problem["detail"].as_str().unwrap().contains("`eng-admin`"),
        "{problem}"
    );
    let actions = member(&app, &org, "ada@example.com").await["actions"].clone();
    assert_eq!(
        actions["change_role"],
        json!({ "allowed": false, "reason": problem["detail"] })
    );
    assert_eq!(actions["remove"]["allowed"], false, "{actions}");
    assert!(
        actions["remove"]["reason"]
            .as_str()
            .unwrap()
            .contains("remove them in the identity provider"),
        "{actions}"
    );
    let (status, problem) = set_role(&app, &org, "bob@example.com", "builder").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // A role changed at the identity provider arrives as an update and is followed.
    let t = org.tick();
    app.deliver(&[with_fields(
        &org,
        "dsync.user.updated",
        "ada",
        json!({ "roles": [{"slug": "builder"}] }),
        &t,
        &t,
    )])
    .await;
    assert_eq!(roles(&app, &org).await["ada@example.com"], "builder");

    // Back to group mappings, with none: the directory's roles return to the default, and roles are set by
    // hand again.
    set_source(&app, &org, json!({ "source": "group_mappings" })).await;
    assert_eq!(roles(&app, &org).await, everyone_viewer);
    assert_eq!(
        member(&app, &org, "ada@example.com").await["actions"]["change_role"],
        json!({ "allowed": true, "reason": null })
    );
    let (status, body) = set_role(&app, &org, "ada@example.com", "builder").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        member(&app, &org, "ada@example.com").await["role_source"],
        json!({ "type": "manual" })
    );
}

async fn each_member_says_where_its_role_comes_from_with_group_mappings(app: TestApp) {
    let org = Org::new(&app).await;
    app.deliver(&[
        org.created("ada"),
        org.created("bob"),
        org.group_created("eng"),
        org.added("ada", "eng"),
    ])
    .await;
    let (status, body) = app
        .op(
            Method::PUT,
            &org.path("/role-mappings"),
            Some(json!([{ "group_id": org.group_id("eng"), "role": "admin" }])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        member(&app, &org, "ada@example.com").await["role_source"],
        json!({ "type": "group_mapping", "group_id": org.group_id("eng") })
    );
    assert_eq!(
        member(&app, &org, "bob@example.com").await["role_source"],
        json!({ "type": "default" })
    );
    let (status, problem) = set_role(&app, &org, "ada@example.com", "viewer").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&org.group_id("eng")),
        "{problem}"
    );

    // While the slugs decide, the group mappings are kept but decide nothing.
    set_source(&app, &org, json!({ "source": "directory_roles" })).await;
    assert_eq!(
        roles(&app, &org).await,
        expected(&[("ada", "viewer"), ("bob", "viewer")])
    );
    let (_, mappings) = app.op(Method::GET, &org.path("/role-mappings"), None).await;
    assert_eq!(mappings["data"].as_array().unwrap().len(), 1);
    set_source(&app, &org, json!({ "source": "group_mappings" })).await;
    assert_eq!(
        roles(&app, &org).await,
        expected(&[("ada", "admin"), ("bob", "viewer")])
    );
}

/// Rule 6 orders snapshots by `updated_at`, ties by the event's `created_at`: a role changed at the
/// identity provider without a newer `updated_at` still wins when its event is newer, and an older event
/// with the same `updated_at` arriving after it changes nothing.
async fn a_role_changed_without_a_newer_updated_at_follows_the_newer_event(app: TestApp) {
    let org = Org::new(&app).await;
    set_source(&app, &org, json!({ "source": "directory_roles", "mappings": [{"slug": "admin", "role": "admin"}, {"slug": "builder", "role": "builder"}] })).await;
    let updated_at = org.tick();
    let (older, newer) = (org.tick(), org.tick());
    app.deliver(&[with_fields(
        &org,
        "dsync.user.created",
        "ada",
        json!({ "roles": [{"slug": "builder"}] }),
        &updated_at,
        &updated_at,
    )])
    .await;
    assert_eq!(roles(&app, &org).await["ada@example.com"], "builder");
    let promoted = with_fields(
        &org,
        "dsync.user.updated",
        "ada",
        json!({ "roles": [{"slug": "admin"}] }),
        &updated_at,
        &newer,
    );
    let stale = with_fields(
        &org,
        "dsync.user.updated",
        "ada",
        json!({ "roles": [] }),
        &updated_at,
        &older,
    );
    app.deliver(&[promoted]).await;
    assert_eq!(roles(&app, &org).await["ada@example.com"], "admin");
    app.deliver(&[stale]).await;
    assert_eq!(
        roles(&app, &org).await["ada@example.com"],
        "admin",
        "the older event changes nothing"
    );
}
