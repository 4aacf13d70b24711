//! An operator's walk: workspaces, refusals, resyncs and deliveries.

use crate::browser::Browser;
use crate::helpers::{Backend, OPERATOR_TOKEN};
use crate::on_both_backends;
use crate::{get, pulled, service_and_broker};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeSet;

/// An operator picks a workspace, sees the plan rule's refusal, resyncs a directory with live
/// progress, and sees failed and skipped deliveries.
async fn an_operator_resyncs_and_sees_refusals(backend: Backend) {
    let (app, broker) = service_and_broker(backend).await;
    let free = app.create_workspace("org_free", "free").await;
    let ws = app.synced_workspace("org_dev").await;
    // Synced, but its organization has no directory at the broker: no groups to link.
    let empty = app.synced_workspace("org_empty").await;
    pulled(&app, &broker.directory_id).await;
    let browser = Browser::start(&app.address).await;

    browser.open("/admin/").await;
    // With the keyboard alone: the token field has the focus, and Enter signs in.
    let focused = browser
        .script("return document.activeElement.id;", json!([]))
        .await;
    assert_eq!(focused, "token");
    browser
        .type_into("#token", &format!("{OPERATOR_TOKEN}\u{E007}"))
        .await;
    browser.wait_text("main h1", "Directory Sync").await;

    // The free workspace: turning sync on is refused with the plan rule's message.
    let (status, refusal) = app
        .op(
            Method::PUT,
            &format!("/api/v1/workspaces/{free}/directory-sync"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    browser
        .choose("#workspace-picker", "Workspace of org_free (free)")
        .await;
    browser.wait_text("main", "Plan: free").await;
    browser.click_button("main", "Directory SyncOff").await;
    let shown = browser.wait_text("#sync-message", "growth").await;
    assert_eq!(shown, refusal["detail"].as_str().unwrap());
    browser.screenshot("directory-sync-plan-refused").await;

    // A workspace without directory groups: Add directory group says why, in the rule's words.
    let (status, team) = app
        .op(
            Method::POST,
            &format!("/api/v1/workspaces/{empty}/teams"),
            Some(json!({"name": "Support"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let (status, rule) = app
        .op(
            Method::POST,
            &format!(
                "/api/v1/workspaces/{empty}/teams/{}/directory-groups",
                team["id"].as_str().unwrap()
            ),
            Some(json!({"group_id": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(rule["code"], "no_directory_groups");
    browser
        .choose("#workspace-picker", "Workspace of org_empty (growth)")
        .await;
    browser.go_to("Teams", "Settings › Teams").await;
    browser
        .click_button("section[data-team=\"Support\"]", "Add directory group")
        .await;
    let shown = browser
        .wait_text("#link-refused", rule["detail"].as_str().unwrap())
        .await;
    assert_eq!(shown, rule["detail"].as_str().unwrap());
    browser.screenshot("teams-no-directory-groups").await;
    browser.click_button("dialog", "Cancel").await;
    browser.go_to("Directory Sync", "Directory Sync").await;

    // The synced workspace: Resync now follows the run to its end.
    browser
        .choose("#workspace-picker", "Workspace of org_dev (growth)")
        .await;
    let row = format!("tr[data-directory=\"{}\"]", broker.directory_id);
    browser.click_button(&row, "Resync now").await;
    let progress = browser.wait_text(&row, "Status: succeeded").await;
    let runs = get(
        &app,
        &format!("/api/v1/sync-runs?directory={}", broker.directory_id),
    )
    .await;
    let latest = &runs["data"][0];
    assert_eq!(latest["trigger"], "on_demand");
    assert!(
        progress.contains(&format!(
            "{} users listed",
            latest["progress"]["users_listed"]
        )),
        "{progress}"
    );
    browser.screenshot("directory-sync-resync").await;

    // Half the directory's users go at once: the next pull is held, the screen says what it would
    // deprovision, and Force applies it.
    let doomed: Vec<String> = broker
        .truth()
        .users
        .iter()
        .take(12)
        .map(|u| u.id.clone())
        .collect();
    for user in &doomed {
        broker
            .delete_user(user)
            .expect("the broker deletes the user");
    }
    browser.click_button(&row, "Resync now").await;
    let held = browser.wait_text(&row, "Held:").await;
    assert!(
        held.contains(&format!("would deprovision {} users", doomed.len())),
        "{held}"
    );
    browser
        .wait_text(&format!("{row} .last-pull"), "held")
        .await;
    browser.screenshot("directory-sync-held").await;
    let before_force = app.members(&ws).await;
    assert!(before_force.iter().all(|m| m["status"] == "active"));
    browser.click_button(&row, "Force").await;
    browser
        .wait_for(
            "the forced run to end",
            "const r = document.querySelector(arguments[0]); \
             return r.innerText.includes('Status: succeeded') && !r.innerText.includes('Held:');",
            json!([row]),
        )
        .await;
    browser
        .wait_text(&format!("{row} .last-pull"), "succeeded")
        .await;
    let gone: BTreeSet<String> = app
        .members(&ws)
        .await
        .iter()
        .filter(|m| m["status"] == "deprovisioned")
        .map(|m| m["directory_user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(gone, doomed.iter().cloned().collect::<BTreeSet<_>>());

    // A delivery for a directory no workspace knows is skipped; the operator retries it.
    let skipped = json!({"id": "event_unknown_1", "event": "dsync.user.created", "created_at": "2026-01-01T00:00:00.000Z",
        "data": {"object": "directory_user", "id": "directory_user_x", "directory_id": "directory_unknown",
                 "organization_id": "org_unknown", "idp_id": "x", "emails": [{"primary": true, "value": "x@example.com"}],
                 "state": "active", "created_at": "2026-01-01T00:00:00.000Z", "updated_at": "2026-01-01T00:00:00.000Z",
                 "custom_attributes": {}, "raw_attributes": {}}});
    app.deliver(&[skipped]).await;
    let listed = get(&app, "/api/v1/events?status=skipped").await;
    let delivery = listed["data"][0]["id"]
        .as_i64()
        .expect("a skipped delivery");
    browser.go_to("Events", "Events").await;
    browser
        .wait_text("main", &format!("Retry {delivery}"))
        .await;
    browser.screenshot("events").await;
    browser
        .click_button("main", &format!("Retry {delivery}"))
        .await;
    browser
        .wait_text("#status", &format!("Delivery {delivery} queued again"))
        .await;

    browser.assert_console_clean().await;
}

on_both_backends!(backend: an_operator_resyncs_and_sees_refusals);
