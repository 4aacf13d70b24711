//! A workspace admin adds a SCIM directory on the Directory Sync screen, hands its base URL and the token
//! shown once to an identity provider (here, requests from the test), sees what it pushed counted, and
//! rotates the token: a new one, the old one revoked.

use crate::browser::Browser;
use crate::helpers::{spawn_app, Backend};
use crate::on_both_backends;
use reqwest::StatusCode;
use serde_json::json;

on_both_backends!(backend: an_admin_connects_an_identity_provider_over_scim);

async fn an_admin_connects_an_identity_provider_over_scim(backend: Backend) {
    let app = spawn_app(backend).await;
    let ws = app.synced_workspace("org_scim_screen").await;
    let token = app.admin_token(&ws).await;

    let browser = Browser::start(&app.address).await;
    browser.open("/admin").await;
    browser.sign_in(&token).await;
    browser.go_to("Directory Sync", "Directory Sync").await;
    browser.type_into("#scim-name", "Okta").await;
    browser
        .click_button("#scim-directories form", "Add SCIM directory")
        .await;
    let told = browser.wait_text("dialog", "not shown again").await;
    let first_secret = browser.text("#scim-secret").await;
    assert!(first_secret.starts_with("scim_"), "{first_secret}");
    browser.screenshot("scim-directory-added").await;
    browser.click_button("dialog", "Cancel").await;
    let base_url = browser.text(".scim-base-url").await;
    assert!(
        base_url.starts_with(&app.address) && base_url.contains("/scim/v2/directory_"),
        "{base_url}"
    );
    assert!(told.contains(&base_url), "{told}");

    // The identity provider pushes a user with what the screen gave.
    let pushed = app
        .client
        .post(format!("{base_url}/Users"))
        .bearer_auth(&first_secret)
        .header("content-type", "application/scim+json")
        .body(json!({"userName": "lin@example.com", "name": {"givenName": "Lin"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), StatusCode::CREATED);
    app.wait_applied().await;
    browser.go_to("Members", "Members").await;
    browser.go_to("Directory Sync", "Directory Sync").await;
    let row = browser.wait_text("tr[data-scim-directory]", "1 user").await;
    assert!(row.contains("Okta"), "{row}");
    let connected = browser.wait_text("table", "SCIM").await;
    assert!(connected.contains("Okta"), "{connected}");

    // Rotation: a new token, then the first revoked.
    browser
        .click_button("tr[data-scim-directory]", "New token")
        .await;
    browser
        .wait_text("dialog", "The other tokens work until revoked")
        .await;
    let second_secret = browser.text("#scim-secret").await;
    assert_ne!(second_secret, first_secret);
    browser.click_button("dialog", "Cancel").await;
    browser
        .click_button("tr[data-scim-directory] li:first-child", "Revoke")
        .await;
    browser
        .wait_text("tr[data-scim-directory] li:first-child", "revoked")
        .await;
    for (secret, expected) in [
        (&first_secret, StatusCode::UNAUTHORIZED),
        (&second_secret, StatusCode::OK),
    ] {
        let answer = app
            .client
            .get(format!("{base_url}/Users"))
            .bearer_auth(secret)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), expected);
    }
    browser.assert_console_clean().await;
}
