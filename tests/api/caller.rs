//! `GET /api/v1/caller`: who a token belongs to.

use crate::helpers::TestApp;
use crate::on_both_backends;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn the_caller_is_the_tokens_owner(app: TestApp) {
    let (status, operator) = app.op(Method::GET, "/api/v1/caller", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(operator, json!({"kind": "operator", "workspace_id": null}));
    let ws = app.create_workspace("org_caller", "growth").await;
    let token = app.admin_token(&ws).await;
    let (status, admin) = app
        .call(Method::GET, "/api/v1/caller", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        admin,
        json!({"kind": "workspace_admin", "workspace_id": ws})
    );
    let (status, _) = app.call(Method::GET, "/api/v1/caller", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

on_both_backends!(the_caller_is_the_tokens_owner);
