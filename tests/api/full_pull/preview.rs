//! Previewing a resync (`?dry_run=true`): what a pull would do now, counted and named, with nothing
//! applied; the pull that follows does exactly that.

use super::*;
use crate::helpers::Backend;
use reqwest::StatusCode;
use serde_json::Value;

/// A service that pulls from `broker`, its directory attached and pulled once by a resync.
async fn pulled_service(backend: Backend, broker: &DevBrokerHandle) -> (TestApp, String) {
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.workos_api_key = Some(broker.api_key.clone().into());
        s.workos_api_base = broker.base_url.clone();
    })
    .await;
    let ws = attach(&app, broker).await;
    assert_eq!(
        resync(&app, &broker.directory_id, false).await["status"],
        "succeeded"
    );
    (app, ws)
}

/// The workspace's change feed from its start (one page: the tests' workspaces are small).
async fn feed(app: &TestApp, ws: &str) -> Value {
    let (status, feed) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/changes?limit=1000"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{feed}");
    assert_eq!(feed["list_metadata"]["has_more"], false);
    feed["data"].clone()
}

/// Everything a preview must leave as it was: every member, each team's roster, the audit log, the change
/// feed and the sync runs.
async fn state(app: &TestApp, ws: &str, team: &str) -> Value {
    let feed = feed(app, ws).await;
    let (_, runs) = app
        .op(Method::GET, "/api/v1/sync-runs?limit=1000", None)
        .await;
    json!({
        "members": app.members(ws).await,
        "team": team_roster(app, ws, team).await,
        "audit": crate::helpers::audit_entries(&app.db),
        "feed": feed,
        "runs": runs["data"].as_array().unwrap().len(),
    })
}

/// Asks for a preview of a resync of `directory`.
async fn preview(app: &TestApp, directory: &str, force: bool) -> Value {
    let (status, body) = app
        .op(
            Method::POST,
            &format!("/api/v1/directories/{directory}/resync?dry_run=true&force={force}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The member ids a sample names.
fn subjects(sample: &Value) -> BTreeSet<String> {
    sample["first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject_id"].as_str().unwrap().to_string())
        .collect()
}

async fn a_preview_changes_nothing_and_the_pull_then_does_what_it_said(backend: Backend) {
    let broker = broker(40, None, Faults::default()).await;
    let (app, ws) = pulled_service(backend, &broker).await;
    let truth = broker.truth();
    let group = |i: usize| truth.groups[i].id.clone();
    let team = team_following(&app, &ws, "Followers", &[group(0)]).await;
    map_roles(&app, &ws, &[(group(1), "admin")]).await;
    let active: Vec<&str> = truth
        .users
        .iter()
        .filter(|u| u.state == "active")
        .map(|u| u.id.as_str())
        .collect();
    let in_group = |g: &str, u: &str| truth.memberships.contains(&(g.to_string(), u.to_string()));
    let (deleted, deactivated) = (active[0], active[1]);
    let leaving = *active[2..]
        .iter()
        .find(|u| in_group(&group(0), u))
        .expect("an active member of the linked group");
    let promoted = *active[2..]
        .iter()
        .find(|u| **u != leaving && !in_group(&group(1), u))
        .expect("an active user outside the mapped group");
    // At the broker, with no webhook to tell Rollcall: one user deleted, one deactivated, one created, one
    // leaves the linked group, one joins the mapped group, and a group is deleted.
    broker.delete_user(deleted).unwrap();
    broker.deactivate_user(deactivated).unwrap();
    broker
        .create_user(rollcall::dev_broker::NewUser {
            email: Some("newcomer@example.com".into()),
            first_name: Some("New".into()),
            ..Default::default()
        })
        .unwrap();
    broker.remove_from_group(&group(0), leaving).unwrap();
    broker.add_to_group(&group(1), promoted).unwrap();
    broker.delete_group(&group(7)).unwrap();

    let before = state(&app, &ws, &team).await;
    let shown = preview(&app, &broker.directory_id, false).await;
    assert_eq!(
        state(&app, &ws, &team).await,
        before,
        "a preview changes nothing"
    );

    let member_of = |user: &str| -> String {
        before["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["directory_user_id"] == user)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let changes = &shown["changes"];
    assert_eq!(shown["held"], false, "{shown}");
    assert_eq!(
        subjects(&changes["member.deprovisioned"]),
        BTreeSet::from([member_of(deleted), member_of(deactivated)]),
        "{shown}"
    );
    assert_eq!(changes["member.deprovisioned"]["count"], 2);
    assert_eq!(changes["member.provisioned"]["count"], 1);
    assert_eq!(
        changes["member.provisioned"]["first"][0]["data"]["member"]["email"],
        "newcomer@example.com",
        "{shown}"
    );
    assert!(
        subjects(&changes["member.role_changed"]).contains(&member_of(promoted)),
        "{shown}"
    );
    assert!(
        changes["team.member_removed"]["count"].as_i64().unwrap() >= 1,
        "{shown}"
    );
    assert_eq!(
        shown["groups_deleted"]["first"],
        json!([{"id": group(7), "name": truth.groups[7].name}])
    );
    let pairs = |sample: &Value| -> Vec<(String, String)> {
        sample["first"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["group_id"].as_str().unwrap().into(),
                    p["user_id"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert!(
        pairs(&shown["memberships_removed"]).contains(&(group(0), leaving.to_string())),
        "{shown}"
    );
    assert!(
        pairs(&shown["memberships_added"]).contains(&(group(1), promoted.to_string())),
        "{shown}"
    );
    assert!(shown["requests"].as_u64().unwrap() >= 2);

    // The resync then does what the preview said: the same counts, the same changes of each type.
    let run = resync(&app, &broker.directory_id, false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"], shown["counts"]);
    let feed = feed(&app, &ws).await;
    let mut made: BTreeMap<String, i64> = BTreeMap::new();
    let seen = before["feed"].as_array().unwrap().len();
    for change in &feed.as_array().unwrap()[seen..] {
        *made
            .entry(change["type"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let said: BTreeMap<String, i64> = changes
        .as_object()
        .unwrap()
        .iter()
        .map(|(kind, sample)| (kind.clone(), sample["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(made, said);
    // Previewed again, nothing is left to do.
    let again = preview(&app, &broker.directory_id, false).await;
    assert_eq!(again["changes"], json!({}), "{again}");
}

async fn a_preview_says_the_guard_would_hold_and_what_forcing_would_do(backend: Backend) {
    let broker = broker(30, None, Faults::default()).await;
    let (app, ws) = pulled_service(backend, &broker).await;
    let truth = broker.truth();
    let doomed: Vec<&str> = truth
        .users
        .iter()
        .filter(|u| u.state == "active")
        .take(15)
        .map(|u| u.id.as_str())
        .collect();
    for user in &doomed {
        broker.delete_user(user).unwrap();
    }
    let members_before = app.members(&ws).await;
    let held = preview(&app, &broker.directory_id, false).await;
    assert_eq!(held["held"], true, "{held}");
    assert_eq!(held["counts"]["held"], 15, "{held}");
    assert!(
        held["changes"].get("member.deprovisioned").is_none(),
        "{held}"
    );
    let forced = preview(&app, &broker.directory_id, true).await;
    assert_eq!(forced["held"], false, "{forced}");
    assert_eq!(
        forced["changes"]["member.deprovisioned"]["count"], 15,
        "{forced}"
    );
    assert_eq!(
        forced["changes"]["member.deprovisioned"]["first"]
            .as_array()
            .unwrap()
            .len(),
        10,
        "ten named, the rest counted"
    );
    assert_eq!(
        app.members(&ws).await,
        members_before,
        "a forced preview changes nothing either"
    );

    // An unknown directory, and a broker that fails, are clear errors.
    let (status, body) = app
        .op(
            Method::POST,
            "/api/v1/directories/directory_unknown/resync?dry_run=true",
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    broker
        .set_faults(&rollcall::dev_broker::FaultsUpdate {
            rate_500: Some(1.0),
            ..Default::default()
        })
        .expect("valid faults");
    let (status, body) = app
        .op(
            Method::POST,
            &format!(
                "/api/v1/directories/{}/resync?dry_run=true",
                broker.directory_id
            ),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("broker_unavailable")),
        "{body}"
    );
    assert_eq!(app.members(&ws).await, members_before);
}

crate::on_both_backends!(
    backend: a_preview_changes_nothing_and_the_pull_then_does_what_it_said,
    a_preview_says_the_guard_would_hold_and_what_forcing_would_do,
);
