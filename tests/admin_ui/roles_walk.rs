//! A workspace admin takes roles from the identity provider: a group of the directory gives its members
//! a role slug at the broker, the admin maps that slug to a role on the Role mappings screen, previews and
//! saves, and the members get the role, each saying where it comes from.

use crate::browser::Browser;
use crate::helpers::Backend;
use crate::on_both_backends;
use crate::{get, pulled, service_and_broker};
use serde_json::json;

async fn an_admin_takes_roles_from_the_identity_provider(backend: Backend) {
    let (app, broker) = service_and_broker(backend).await;
    let truth = broker.truth();
    let group = truth.groups[0].id.clone();
    broker
        .set_group_role(&group, Some("eng-admin"))
        .expect("the group gives a role slug");
    let ws = app.synced_workspace("org_dev").await;
    pulled(&app, &broker.directory_id).await;
    let in_group = get(
        &app,
        &format!("/api/v1/workspaces/{ws}/members?group={group}&limit=1000"),
    )
    .await;
    let emails: Vec<String> = in_group["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_string())
        .collect();
    assert!(!emails.is_empty());

    let token = app.admin_token(&ws).await;
    let browser = Browser::start(&app.address).await;
    browser.open("/admin").await;
    browser.sign_in(&token).await;
    browser.go_to("Role mappings", "Role mappings").await;
    browser
        .script(
            "document.querySelector('input[name=role-source][value=directory_roles]').click();",
            json!([]),
        )
        .await;
    browser
        .click_button("#role-source", "Add a role slug")
        .await;
    browser
        .type_into("#role-source tr.slug-row input.slug", "eng-admin")
        .await;
    browser
        .choose("#role-source tr.slug-row select.slug-role", "admin")
        .await;
    browser.click_button("#role-source", "Preview").await;
    let preview = browser
        .wait_text("#role-source-preview", "This change would move")
        .await;
    assert!(
        preview.contains(&format!("would move {} members", emails.len())),
        "{preview}"
    );
    browser.screenshot("role-source").await;
    browser
        .click_button("#role-source", "Save where roles come from")
        .await;
    browser.wait_text("#status", "Role source saved").await;
    for email in &emails {
        let member = app.member(&ws, email).await.unwrap();
        assert_eq!(member["role"], "admin", "{member}");
        assert_eq!(
            member["role_source"],
            json!({ "type": "directory_role", "slug": "eng-admin" })
        );
    }

    // The Members screen says where the role comes from, and the role cannot be changed there.
    browser.go_to("Members", "Members").await;
    let row = format!("tr[data-member=\"{}\"]", emails[0]);
    let shown = browser
        .wait_text(&row, "from the identity provider's role eng-admin")
        .await;
    assert!(
        shown.contains("role comes from the identity provider's role `eng-admin`"),
        "{shown}"
    );
    let disabled = browser
        .script(
            "return document.querySelector(arguments[0] + ' select').disabled;",
            json!([row]),
        )
        .await;
    assert_eq!(disabled, json!(true));
    browser.assert_console_clean().await;
}

on_both_backends!(backend: an_admin_takes_roles_from_the_identity_provider);
