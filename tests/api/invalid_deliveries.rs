//! Signed bodies that are not events (`invalid` deliveries): kept once for operators however often the
//! broker retries them, dismissed by an operator, pruned with the rest.

use crate::broker::{at, event};
use crate::helpers::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

crate::on_both_backends!(
    a_redelivered_invalid_body_is_counted_not_stored_again,
    invalid_bodies_sent_at_once_are_stored_once,
    an_operator_dismisses_an_invalid_delivery,
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

async fn an_operator_dismisses_an_invalid_delivery(app: TestApp) {
    let body = b"{\"hello\": \"world\"}";
    post_invalid(&app, body).await;
    let id = invalid(&app).await[0]["id"].as_i64().unwrap();
    let dismiss = format!("/api/v1/events/{id}/dismiss");

    let ws = app.create_workspace("org_dismiss", "growth").await;
    let admin = app.admin_token(&ws).await;
    let (status, problem) = app.call(Method::POST, &dismiss, Some(&admin), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");

    let (status, dismissed) = app.op(Method::POST, &dismiss, None).await;
    assert_eq!(status, StatusCode::OK, "{dismissed}");
    assert_eq!(dismissed["status"], "dismissed");
    assert!(dismissed["processed_at"].is_string(), "{dismissed}");
    assert_eq!(invalid(&app).await, Vec::<Value>::new());
    // Again: nothing changes.
    let (status, again) = app.op(Method::POST, &dismiss, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, dismissed);

    // The broker retrying the same body is still counted on the dismissed delivery.
    post_invalid(&app, body).await;
    assert_eq!(invalid(&app).await, Vec::<Value>::new());
    let (_, listed) = app
        .op(Method::GET, "/api/v1/events?status=dismissed", None)
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["data"][0]["redeliveries"], 1);

    // Only invalid deliveries are dismissed.
    let token = event("dsync.token.created", json!({}), &at(1));
    app.deliver(std::slice::from_ref(&token)).await;
    let delivered = app.deliveries(token["id"].as_str().unwrap()).await;
    let delivered = delivered[0]["id"].as_i64().unwrap();
    let (status, problem) = app
        .op(
            Method::POST,
            &format!("/api/v1/events/{delivered}/dismiss"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["code"], "not_dismissable");
    let (status, _) = app
        .op(Method::POST, "/api/v1/events/999999/dismiss", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.op(Method::GET, &dismiss, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
