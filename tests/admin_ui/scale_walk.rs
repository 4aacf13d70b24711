//! The screens of a directory larger than a page: members paged and searched on the server, filtered by
//! group, and a resync previewed (changing nothing) before it is run, its counts following without a reload.

use crate::browser::Browser;
use crate::helpers::{Backend, TestApp, OPERATOR_TOKEN};
use crate::on_both_backends;
use crate::{get, pulled, service_and_broker_of};
use serde_json::{json, Value};

/// Waits until the member list's caption says `text`.
async fn wait_caption(browser: &Browser, text: &str) -> String {
    browser.wait_text("#members caption", text).await
}

/// The emails the member list shows.
async fn emails_shown(browser: &Browser) -> Vec<String> {
    let shown = browser
        .script(
            "return [...document.querySelectorAll('#members tr[data-member]')].map(r => r.dataset.member);",
            json!([]),
        )
        .await;
    serde_json::from_value(shown).unwrap()
}

/// How many members the API counts for this query.
async fn total(app: &TestApp, ws: &str, query: &str) -> i64 {
    let page = get(
        app,
        &format!("/api/v1/workspaces/{ws}/members?limit=1&{query}"),
    )
    .await;
    page["list_metadata"]["total"].as_i64().unwrap()
}

async fn an_operator_finds_members_and_previews_a_resync(backend: Backend) {
    let (app, broker) = service_and_broker_of(backend, 120, 4).await;
    let ws = app.synced_workspace("org_dev").await;
    assert_eq!(
        pulled(&app, &broker.directory_id).await["status"],
        "succeeded"
    );
    let browser = Browser::start(&app.address).await;
    browser.open("/admin/").await;
    browser.sign_in(OPERATOR_TOKEN).await;
    browser.wait_text("main h1", "Directory Sync").await;

    // Paged by the server: 120 members, 50 at a time, Previous and Next.
    browser.go_to("Members", "Members").await;
    wait_caption(&browser, "120 members, showing 1–50").await;
    let first_page = emails_shown(&browser).await;
    assert_eq!(first_page.len(), 50);
    browser.click_button("#members", "Next").await;
    wait_caption(&browser, "showing 51–100").await;
    let second_page = emails_shown(&browser).await;
    assert!(second_page.iter().all(|e| !first_page.contains(e)));
    browser.click_button("#members", "Next").await;
    wait_caption(&browser, "showing 101–120").await;
    let next_disabled = browser
        .script(
            "return document.querySelector('#members button.next').disabled;",
            json!([]),
        )
        .await;
    assert_eq!(next_disabled, true);
    browser.click_button("#members", "Previous").await;
    wait_caption(&browser, "showing 51–100").await;
    assert_eq!(emails_shown(&browser).await, second_page);
    browser.screenshot("members-paged").await;

    // Searched by the server: part of one member's email, typed in another case.
    let someone = first_page[7].clone();
    let needle = someone.split('@').next().unwrap()[1..].to_uppercase();
    let expected = total(&app, &ws, &format!("search={needle}")).await;
    assert!(expected >= 1);
    browser.type_into("#member-search", &needle).await;
    let noun = if expected == 1 { "member" } else { "members" };
    wait_caption(
        &browser,
        &format!("{expected} {noun}, showing 1–{expected}"),
    )
    .await;
    let found = emails_shown(&browser).await;
    assert!(found.contains(&someone), "{found:?}");
    assert_eq!(found.len() as i64, expected);
    browser.screenshot("members-search").await;

    // Filtered by group, with the search cleared: the count is the server's.
    browser
        .script("const i = document.querySelector('#member-search'); i.value = ''; i.dispatchEvent(new Event('input'));", json!([]))
        .await;
    wait_caption(&browser, "120 members").await;
    let groups = get(&app, &format!("/api/v1/workspaces/{ws}/directory-groups")).await;
    let group = &groups["data"][0];
    let in_group = total(
        &app,
        &ws,
        &format!("group={}", group["id"].as_str().unwrap()),
    )
    .await;
    browser
        .choose("#member-group", group["name"].as_str().unwrap())
        .await;
    wait_caption(&browser, &format!("{in_group} member")).await;
    let shown = emails_shown(&browser).await;
    let row = format!("#members tr[data-member=\"{}\"] td.groups", shown[0]);
    assert!(browser
        .text(&row)
        .await
        .contains(group["name"].as_str().unwrap()));

    // Two users leave at the broker. The preview says so and changes nothing.
    let leaving: Vec<Value> = app
        .members(&ws)
        .await
        .into_iter()
        .filter(|m| m["status"] == "active")
        .take(2)
        .collect();
    for m in &leaving {
        broker
            .delete_user(m["directory_user_id"].as_str().unwrap())
            .expect("the broker deletes the user");
    }
    let members_before = app.members(&ws).await;
    let runs_before = get(&app, "/api/v1/sync-runs").await["data"]
        .as_array()
        .unwrap()
        .len();
    browser.go_to("Directory Sync", "Directory Sync").await;
    let row = format!("tr[data-directory=\"{}\"]", broker.directory_id);
    browser
        .wait_text(&format!("{row} .member-count"), "120")
        .await;
    browser.click_button(&row, "Preview resync").await;
    let preview = browser
        .wait_text(&row, "Preview: nothing was changed")
        .await;
    assert!(preview.contains("member.deprovisioned: 2"), "{preview}");
    for m in &leaving {
        assert!(preview.contains(m["email"].as_str().unwrap()), "{preview}");
    }
    browser.screenshot("directory-sync-preview").await;
    assert_eq!(
        app.members(&ws).await,
        members_before,
        "a preview changes no member"
    );
    assert_eq!(
        get(&app, "/api/v1/sync-runs").await["data"]
            .as_array()
            .unwrap()
            .len(),
        runs_before,
        "a preview is no run"
    );
    browser
        .wait_text(&format!("{row} .member-count"), "120")
        .await;

    // The resync does it; the directory's member count follows without a reload.
    browser.click_button(&row, "Resync now").await;
    browser.wait_text(&row, "Status: succeeded").await;
    browser
        .wait_text(&format!("{row} .member-count"), "118")
        .await;
    assert_eq!(total(&app, &ws, "status=active").await, 118);

    browser.assert_console_clean().await;
}

on_both_backends!(backend: an_operator_finds_members_and_previews_a_resync);
