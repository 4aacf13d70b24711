//! Previewing role mappings: the members whose role a change would move, with nothing changed; and
//! listing the members of one directory group.

use crate::full_pull::{broker, memberships_of, pulled_once};
use crate::helpers::{audit_entries, TestApp};
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use rollcall::dev_broker::Faults;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Each member's role, by member id.
async fn roles(app: &TestApp, ws: &str) -> BTreeMap<String, String> {
    app.members(ws)
        .await
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Previews `proposal` (changing nothing), replaces the mappings with it, and checks that the replacement
/// moved exactly the members the preview listed; then previews and applies emptying them, which returns
/// every role to where it was. Returns how many members moved.
async fn replacement_does_what_its_preview_said(app: &TestApp, ws: &str, proposal: Value) -> usize {
    let before = roles(app, ws).await;
    let audit_before = audit_entries(&app.db);
    let (status, preview) = app
        .op(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/role-mappings/preview"),
            Some(proposal.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(roles(app, ws).await, before, "a preview changes no role");
    assert_eq!(
        audit_entries(&app.db),
        audit_before,
        "a preview audits nothing"
    );
    let (_, mappings) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/role-mappings"),
            None,
        )
        .await;
    assert_eq!(mappings["data"], json!([]));

    // What the replacement then does is exactly what the preview said.
    let (status, _) = app
        .op(
            Method::PUT,
            &format!("/api/v1/workspaces/{ws}/role-mappings"),
            Some(proposal),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let after = roles(app, ws).await;
    let moved: Vec<Value> = after
        .iter()
        .filter(|(id, role)| before[*id] != **role)
        .map(|(id, role)| json!({"member_id": id, "from": before[id], "to": role}))
        .collect();
    assert!(!moved.is_empty());
    let previewed: Vec<Value> = preview["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!({"member_id": c["member_id"], "from": c["from"], "to": c["to"]}))
        .collect();
    assert_eq!(previewed, moved);
    assert_eq!(preview["total"], moved.len());
    assert_eq!(preview["truncated"], false);
    let counted: u64 = preview["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, moved.len() as u64);

    // Emptying the mappings returns the mapped roles to the default: the preview says so first.
    let (status, emptied) = app
        .op(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/role-mappings/preview"),
            Some(json!([])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{emptied}");
    assert_eq!(emptied["total"], moved.len());
    let (status, _) = app
        .op(
            Method::PUT,
            &format!("/api/v1/workspaces/{ws}/role-mappings"),
            Some(json!([])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        roles(app, ws).await,
        before,
        "back to the roles before the mappings"
    );

    moved.len()
}

async fn a_preview_shows_the_moves_and_changes_nothing(app: TestApp) {
    let broker = broker(40, None, Faults::default()).await;
    let ws = pulled_once(&app, &broker).await;
    let (_, groups) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-groups"),
            None,
        )
        .await;
    let groups: Vec<Value> = groups["data"].as_array().unwrap().clone();
    let (first, second) = (
        groups[0]["id"].as_str().unwrap(),
        groups[1]["id"].as_str().unwrap(),
    );

    // `?group=` lists the group's members: those whose directory user is in it.
    let (status, listed) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/members?group={first}&limit=1000"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listed: BTreeSet<String> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["directory_user_id"].as_str().unwrap().to_string())
        .collect();
    // Users never active never became members.
    let users_of_members: BTreeSet<String> = app
        .members(&ws)
        .await
        .iter()
        .filter_map(|m| Some(m["directory_user_id"].as_str()?.to_string()))
        .collect();
    let truth: BTreeSet<String> = memberships_of(&app, &broker.directory_id)
        .into_iter()
        .filter(|(g, u)| g == first && users_of_members.contains(u))
        .map(|(_, u)| u)
        .collect();
    assert!(!truth.is_empty());
    assert_eq!(listed, truth);

    let proposal =
        json!([{"group_id": first, "role": "admin"}, {"group_id": second, "role": "builder"}]);
    replacement_does_what_its_preview_said(&app, &ws, proposal).await;

    // A group the workspace does not have is refused, as the replacement refuses it.
    let (status, problem) = app
        .op(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/role-mappings/preview"),
            Some(json!([{"group_id": "directory_group_nope", "role": "admin"}])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "unknown_group");
}

/// A workspace large enough that, on SQLite, the replacement recomputes roles over several transactions
/// (the workspace's lock held across them): the end is the same as the preview said.
async fn a_large_replacement_in_steps_does_what_its_preview_said(app: TestApp) {
    let broker = broker(600, None, Faults::default()).await;
    let ws = pulled_once(&app, &broker).await;
    let (_, groups) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-groups?limit=100"),
            None,
        )
        .await;
    let proposal: Vec<Value> = groups["data"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["admin", "builder", "viewer"].iter().cycle())
        .map(|(g, role)| json!({"group_id": g["id"], "role": role}))
        .collect();
    let moved = replacement_does_what_its_preview_said(&app, &ws, Value::Array(proposal)).await;
    assert!(
        moved > 100,
        "{moved} members moved: enough for several steps"
    );
}

on_both_backends!(
    a_preview_shows_the_moves_and_changes_nothing,
    a_large_replacement_in_steps_does_what_its_preview_said
);
