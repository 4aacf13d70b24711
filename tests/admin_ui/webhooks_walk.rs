//! A workspace admin registers a webhook endpoint on its screen, keeps the secret shown once, sees a change
//! delivered and its attempt, and disables the endpoint.

use crate::browser::Browser;
use crate::get;
use crate::helpers::{serve_http, spawn_app_with, Backend};
use crate::on_both_backends;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A delivery as the receiver got it: its id, timestamp, signature and body.
type Got = Arc<Mutex<Vec<(String, String, String, String)>>>;

async fn an_admin_registers_an_endpoint_and_follows_its_deliveries(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.outbound_allow_private = true).await;
    let ws = app.create_workspace("org_hooks", "growth").await;
    let token = app.admin_token(&ws).await;
    let got: Got = Arc::default();
    let kept = got.clone();
    let (receiver, _server) = serve_http(move |request: HttpRequest, body: Bytes| {
        let kept = kept.clone();
        async move {
            let header = |name: &str| crate::helpers::header(&request, name);
            kept.lock().unwrap().push((
                header("webhook-id"),
                header("webhook-timestamp"),
                header("webhook-signature"),
                String::from_utf8_lossy(&body).into_owned(),
            ));
            HttpResponse::Ok().body("thanks")
        }
    });
    let url = format!("{receiver}/hooks");

    let browser = Browser::start(&app.address).await;
    browser.open("/admin").await;
    browser.sign_in(&token).await;
    browser.go_to("Webhooks", "Settings › Webhooks").await;
    browser.type_into("#endpoint-url", &url).await;
    browser
        .script(
            "document.querySelector('#endpoint-batch').value = '';",
            json!([]),
        )
        .await;
    browser.type_into("#endpoint-batch", "3").await;
    browser.click_button("form", "Add endpoint").await;
    browser.wait_text("dialog", "not shown again").await;
    let secret = browser.text("#endpoint-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    browser.screenshot("webhooks-secret").await;
    browser.click_button("dialog", "Cancel").await;
    let listed = browser
        .wait_text(&format!("tr[data-endpoint=\"{url}\"]"), "Enabled")
        .await;
    assert!(listed.contains("up to 3 per message"), "{listed}");

    // A change in the workspace reaches the endpoint, signed with the secret the screen showed.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/teams"),
            Some(&token),
            Some(json!({ "name": "Hooked" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (id, timestamp, signature, body) = loop {
        if let Some(first) = got.lock().unwrap().first().cloned() {
            break first;
        }
        assert!(Instant::now() < deadline, "nothing was delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        rollcall::outbound::signing::sign(
            &secret,
            &id,
            timestamp.parse().unwrap(),
            body.as_bytes()
        )
        .as_deref(),
        Some(signature.as_str())
    );

    // The screen shows the attempt, and disabling stops the endpoint.
    let endpoints = get(&app, &format!("/api/v1/workspaces/{ws}/webhook-endpoints")).await;
    let endpoint = endpoints["data"][0]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(
        &app,
        &format!("/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint}"),
    )
    .await["delivered_through"]
        != 1
    {
        assert!(Instant::now() < deadline, "the delivery was never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    browser.go_to("Audit log", "Audit log").await;
    browser.go_to("Webhooks", "Settings › Webhooks").await;
    let row = format!("tr[data-endpoint=\"{url}\"]");
    browser.click_button(&row, "Attempts").await;
    browser.wait_text("main", "Latest attempts").await;
    let attempts = browser.text("main").await;
    assert!(
        attempts.contains("200") && attempts.contains("thanks"),
        "{attempts}"
    );
    browser.screenshot("webhooks-attempts").await;
    browser.click_button(&row, "Disable").await;
    browser.wait_text(&row, "Disabled: disabled by hand").await;
    let shown = get(
        &app,
        &format!("/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint}"),
    )
    .await;
    assert_eq!(shown["enabled"], false);
    browser.assert_console_clean().await;
}

on_both_backends!(backend: an_admin_registers_an_endpoint_and_follows_its_deliveries);
