//! A workspace admin's walk through the product page's steps.

use crate::browser::Browser;
use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use crate::{get, pulled, service_and_broker};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// The emails of a team's members, each with its sources as the API shows them.
async fn team_members(app: &TestApp, ws: &str, team: &str) -> Vec<(String, Vec<Value>)> {
    let body = get(
        app,
        &format!("/api/v1/workspaces/{ws}/teams/{team}/members?limit=1000"),
    )
    .await;
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_string(),
                m["sources"].as_array().unwrap().clone(),
            )
        })
        .collect()
}

/// The emails the page lists in a team's section, its members opened (they are read when opened).
async fn emails_shown_in_team(browser: &Browser, team: &str) -> BTreeSet<String> {
    let shown = browser
        .wait_for(
            &format!("the members of {team}"),
            "const s = document.querySelector(`section[data-team=\"${arguments[0]}\"]`); \
             if (!s) return null; \
             const d = s.querySelector('details.team-members'); \
             if (!d.open) { d.open = true; return null; } \
             const t = d.querySelector('.paged table'); \
             return t ? [...t.querySelectorAll('tr[data-member]')].map(r => r.dataset.member) : null;",
            json!([team]),
        )
        .await;
    shown
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

fn team_id(teams: &Value, name: &str) -> String {
    teams["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no team {name}: {teams}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A workspace admin signs in, turns Directory Sync on, links a group to a team and unlinks it with
/// each choice, maps a group to a role, and sees a locked action explained.
async fn an_admin_walks_the_product_page(backend: Backend) {
    let (app, broker) = service_and_broker(backend).await;
    let ws = app.create_workspace("org_dev", "growth").await;
    let token = app.admin_token(&ws).await;
    // A member added by hand before the directory took over.
    let (status, manual) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/members"),
            Some(&token),
            Some(json!({"email": "guest@example.com", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{manual}");
    let browser = Browser::start(&app.address).await;

    // Sign in with the admin token.
    browser.open("/admin").await;
    browser.wait_text("main h1", "Sign in").await;
    browser.screenshot("sign-in").await;
    browser.sign_in(&token).await;
    assert_eq!(
        browser.text("#workspace-name").await,
        get(&app, &format!("/api/v1/workspaces/{ws}")).await["name"]
    );

    // Turn Directory Sync on: the broker's directory is pulled.
    browser.wait_text("#sync-switch", "Off").await;
    browser.click_button("main", "Directory SyncOff").await;
    browser.wait_text("#sync-switch", "On").await;
    let run = pulled(&app, &broker.directory_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    browser.go_to("Members", "Members").await;
    browser.go_to("Directory Sync", "Directory Sync").await;
    let active = app
        .members(&ws)
        .await
        .iter()
        .filter(|m| m["status"] == "active" && m["managed_by"] == "directory")
        .count();
    let row = browser
        .wait_text(
            &format!("tr[data-directory=\"{}\"]", broker.directory_id),
            "succeeded",
        )
        .await;
    assert!(row.contains(&format!("\t{active}\t")), "{row}");
    browser.screenshot("directory-sync").await;

    // Settings > Teams: make a team, add a directory group, confirm.
    let groups = get(&app, &format!("/api/v1/workspaces/{ws}/directory-groups")).await;
    let groups = groups["data"].as_array().unwrap().clone();
    let (first, second) = (&groups[0], &groups[1]);
    let first_name = first["name"].as_str().unwrap();
    let second_name = second["name"].as_str().unwrap();
    browser.go_to("Teams", "Settings › Teams").await;
    browser.type_into("#new-team-name", "Builders").await;
    browser.click_button("form", "Create team").await;
    browser
        .wait_text("section[data-team=\"Builders\"]", "Builders")
        .await;
    browser
        .click_button("section[data-team=\"Builders\"]", "Add directory group")
        .await;
    browser
        .choose(
            "#group-picker",
            &format!("{first_name} ({} members)", first["member_count"]),
        )
        .await;
    browser.screenshot("teams-add-directory-group").await;
    browser.click_button("dialog", "Continue").await;
    browser.wait_text("dialog", "Link").await;
    browser.click_button("dialog", "Confirm").await;
    browser
        .wait_text(
            "section[data-team=\"Builders\"]",
            &format!("Remove {first_name}"),
        )
        .await;
    let teams = get(&app, &format!("/api/v1/workspaces/{ws}/teams")).await;
    let engineering = team_id(&teams, "Builders");
    let in_team = team_members(&app, &ws, &engineering).await;
    assert_eq!(
        in_team.len() as i64,
        first["member_count"].as_i64().unwrap()
    );
    assert!(!in_team.is_empty());
    let emails: BTreeSet<String> = in_team.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(emails_shown_in_team(&browser, "Builders").await, emails);
    browser.screenshot("teams").await;

    // Remove the link, keeping its members: they stay, as manual members.
    browser
        .click_button(
            "section[data-team=\"Builders\"]",
            &format!("Remove {first_name}"),
        )
        .await;
    let dialog = browser.wait_text("dialog", "Remove current members").await;
    assert!(
        dialog.contains(&format!("{} members are in Builders", emails.len())),
        "{dialog}"
    );
    let buttons = browser
        .script(
            "return [...document.querySelectorAll('dialog button')].map(b => b.textContent);",
            json!([]),
        )
        .await;
    assert_eq!(
        buttons,
        json!(["Keep current members", "Remove current members", "Cancel"])
    );
    browser.screenshot("teams-remove-directory-group").await;
    browser.click_button("dialog", "Keep current members").await;
    browser
        .wait_text(
            "section[data-team=\"Builders\"]",
            "No directory group is linked",
        )
        .await;
    let kept = team_members(&app, &ws, &engineering).await;
    assert_eq!(
        kept.iter().map(|(e, _)| e.clone()).collect::<BTreeSet<_>>(),
        emails
    );
    assert!(kept
        .iter()
        .all(|(_, sources)| sources == &vec![json!({"type": "manual"})]));
    assert_eq!(emails_shown_in_team(&browser, "Builders").await, emails);

    // A second team, its group removed with its members: the team empties.
    browser.type_into("#new-team-name", "Launch crew").await;
    browser.click_button("form", "Create team").await;
    browser
        .click_button("section[data-team=\"Launch crew\"]", "Add directory group")
        .await;
    browser
        .choose(
            "#group-picker",
            &format!("{second_name} ({} members)", second["member_count"]),
        )
        .await;
    browser.click_button("dialog", "Continue").await;
    browser.click_button("dialog", "Confirm").await;
    browser
        .wait_text(
            "section[data-team=\"Launch crew\"]",
            &format!("Remove {second_name}"),
        )
        .await;
    // The dialog takes the focus, Escape closes it, and the focus goes back to the button that opened it.
    let remove_second = format!("Remove {second_name}");
    browser
        .click_button("section[data-team=\"Launch crew\"]", &remove_second)
        .await;
    browser.wait_text("dialog", "Keep current members").await;
    let focus = browser
        .script(
            "return document.querySelector('dialog').contains(document.activeElement);",
            json!([]),
        )
        .await;
    assert_eq!(focus, true);
    browser.press_escape().await;
    browser
        .wait_for(
            "the focus back on the opener",
            "return !document.querySelector('dialog').open && document.activeElement.textContent === arguments[0];",
            json!([remove_second]),
        )
        .await;
    browser
        .click_button("section[data-team=\"Launch crew\"]", &remove_second)
        .await;
    browser
        .click_button("dialog", "Remove current members")
        .await;
    browser
        .wait_text("section[data-team=\"Launch crew\"]", "(0 members)")
        .await;
    let teams = get(&app, &format!("/api/v1/workspaces/{ws}/teams")).await;
    assert!(team_members(&app, &ws, &team_id(&teams, "Launch crew"))
        .await
        .is_empty());
    assert!(emails_shown_in_team(&browser, "Launch crew")
        .await
        .is_empty());

    // Role mappings: the first group grants admin; the preview says how many members move.
    let in_first = get(
        &app,
        &format!(
            "/api/v1/workspaces/{ws}/members?group={}&limit=1000",
            first["id"].as_str().unwrap()
        ),
    )
    .await;
    let in_first: Vec<Value> = in_first["data"].as_array().unwrap().clone();
    let moving = in_first.iter().filter(|m| m["role"] != "admin").count();
    assert!(moving > 0);
    browser.go_to("Role mappings", "Role mappings").await;
    browser
        .choose(&format!("select[data-group=\"{first_name}\"]"), "admin")
        .await;
    let preview = browser
        .wait_text("#role-preview", "This change would move")
        .await;
    assert!(
        preview.contains(&format!("would move {moving} members")),
        "{preview}"
    );
    browser.screenshot("role-mappings").await;
    browser.click_button("main", "Save role mappings").await;
    browser.wait_text("#status", "Role mappings saved").await;
    for member in &in_first {
        let email = member["email"].as_str().unwrap();
        assert_eq!(app.member(&ws, email).await.unwrap()["role"], "admin");
    }

    // Members: the roles show, and a directory member's removal and role are locked with the server's
    // reasons.
    browser.go_to("Members", "Members").await;
    let someone = in_first[0]["email"].as_str().unwrap();
    let row = format!("tr[data-member=\"{someone}\"]");
    browser
        .wait_text(&row, "remove them in the identity provider")
        .await;
    let locked = browser
        .script(
            "const r = document.querySelector(arguments[0]); \
             const b = [...r.querySelectorAll('button')].find(b => b.textContent === 'Remove'); \
             const s = r.querySelector('select'); \
             return [b.disabled, document.getElementById(b.getAttribute('aria-describedby')).textContent, \
                     s.value, s.disabled];",
            json!([row]),
        )
        .await;
    let shown = get(
        &app,
        &format!("/api/v1/workspaces/{ws}/members?email={someone}"),
    )
    .await;
    let actions = &shown["data"][0]["actions"];
    let reasons = format!(
        "{}; {}",
        actions["remove"]["reason"].as_str().unwrap(),
        actions["change_role"]["reason"].as_str().unwrap()
    );
    assert!(
        reasons.contains("role mapping of directory group"),
        "{reasons}"
    );
    assert_eq!(locked, json!([true, reasons, "admin", true]));
    let guest = browser
        .script(
            "const r = document.querySelector('tr[data-member=\"guest@example.com\"]'); \
             return [r.innerText.includes('Manual'), r.querySelector('button').disabled];",
            json!([]),
        )
        .await;
    assert_eq!(guest, json!([true, false]));
    // A manual member's role is the admin's to set.
    browser
        .choose("tr[data-member=\"guest@example.com\"] select", "builder")
        .await;
    browser
        .wait_text("#status", "guest@example.com is now builder")
        .await;
    assert_eq!(
        app.member(&ws, "guest@example.com").await.unwrap()["role"],
        "builder"
    );
    browser.screenshot("members").await;
    // Owner is the operator's (rule 22): the screen shows the server's refusal and keeps the role.
    browser
        .choose("tr[data-member=\"guest@example.com\"] select", "owner")
        .await;
    browser
        .wait_text(
            "#members-message",
            "only the operator grants or removes the owner role",
        )
        .await;
    let shown = browser
        .script(
            "return document.querySelector('tr[data-member=\"guest@example.com\"] select').value;",
            json!([]),
        )
        .await;
    assert_eq!(shown, "builder");
    assert_eq!(
        app.member(&ws, "guest@example.com").await.unwrap()["role"],
        "builder"
    );

    // The audit log names what caused each change.
    browser.go_to("Audit log", "Audit log").await;
    browser.wait_text("main table", "Admin token").await;
    browser.wait_text("main table", "team_link").await;
    browser
        .wait_text("main table", "role: \"viewer\" → \"admin\"")
        .await;
    browser.screenshot("audit-log").await;

    // With Directory Sync off, linking a group is refused with the rule's message.
    browser.go_to("Directory Sync", "Directory Sync").await;
    browser.click_button("main", "Directory SyncOn").await;
    browser.wait_text("#sync-switch", "Off").await;
    let (status, refusal) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/teams/{engineering}/directory-groups"),
            Some(&token),
            Some(json!({ "group_id": first["id"] })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refusal}");
    browser.go_to("Teams", "Settings › Teams").await;
    // The screen says so up front, in the server's words, before anything is picked.
    browser
        .click_button("section[data-team=\"Builders\"]", "Add directory group")
        .await;
    let shown = browser
        .wait_text("#link-refused", refusal["detail"].as_str().unwrap())
        .await;
    assert_eq!(shown, refusal["detail"].as_str().unwrap());
    browser.screenshot("teams-sync-off").await;

    browser.assert_console_clean().await;
}

on_both_backends!(backend: an_admin_walks_the_product_page);
