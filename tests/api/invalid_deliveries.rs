//! Signed bodies that are not events (`invalid` deliveries): kept once for operators however often the
//! broker retries them.

use crate::helpers::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::Value;

crate::on_both_backends!(
    a_redelivered_invalid_body_is_counted_not_stored_again,
    invalid_bodies_sent_at_once_are_stored_once,
);

/// The stored `invalid` deliveries, newest first.
async fn invalid(app: &TestApp) -> Vec<Value> {
    let (status, body) = app
        .op(Method::GET, "/api/v1/events?status=invalid", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    body["data"].as_array().unwrap().clone()
}

async fn post_invalid(app: &TestApp, body: &[u8]) {
    let response = app.post_webhook(body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_payload");
}

async fn a_redelivered_invalid_body_is_counted_not_stored_again(app: TestApp) {
    let broken = br#"{"id":"event_broken","event":"dsync.user.created","data":{}}"#;
    // The broker retries a delivery it did not get a 2xx for: each retry is signed anew, the body is
    // the same.
    for _ in 0..3 {
        post_invalid(&app, broken).await;
    }
    post_invalid(&app, b"not json at all").await;
    let kept = invalid(&app).await;
    let counts: Vec<i64> = kept
        .iter()
        .map(|d| d["redeliveries"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [0, 2], "{kept:?}");
}

async fn invalid_bodies_sent_at_once_are_stored_once(app: TestApp) {
    // Sent at once, they reach the store together and are committed in one transaction.
    let sends = (0..8).map(|_| post_invalid(&app, b"[1, 2, 3]"));
    futures_util::future::join_all(sends).await;
    let kept = invalid(&app).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["redeliveries"], 7);
}
