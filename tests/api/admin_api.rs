//! The admin API: auth, tenant isolation, the directory's lock on members, errors.

use crate::broker::{at, event, TestDirectory};
use crate::helpers::{TestApp, OPERATOR_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn provisioned_member(app: &TestApp, dir: &TestDirectory, email: &str) -> Value {
    let id = format!("directory_user_{}", crate::broker::unique());
    app.deliver(&[event(
        "dsync.user.created",
        dir.user(&id, &id, Some(email), "Dee", "active", &at(1)),
        &at(1),
    )])
    .await;
    app.members(&app_ws(app, dir).await)
        .await
        .into_iter()
        .find(|m| m["email"] == email)
        .unwrap()
}

async fn app_ws(app: &TestApp, dir: &TestDirectory) -> String {
    let (_, list) = app
        .op(Method::GET, "/api/v1/workspaces?limit=1000", None)
        .await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["organization_id"] == dir.organization_id.as_str())
        .map(|w| w["id"].as_str().unwrap().to_string())
        .unwrap()
}

async fn members_are_locked_while_directory_sync_is_on(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.create_workspace(&dir.organization_id, "growth").await;
    let members = format!("/api/v1/workspaces/{ws}/members");
    let (status, leftover) = app
        .op(
            Method::POST,
            &members,
            Some(json!({"email": "left@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.set_sync(&ws, true).await;
    let synced = provisioned_member(&app, &dir, "synced@example.com").await;

    let (status, body) = app
        .op(
            Method::POST,
            &members,
            Some(json!({"email": "new@example.com"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("managed_by_directory_sync"))
    );
    let synced_path = format!("{members}/{}", synced["id"].as_str().unwrap());
    let (status, body) = app.op(Method::DELETE, &synced_path, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("managed_by_directory_sync"))
    );
    let (status, body) = app
        .op(
            Method::PATCH,
            &synced_path,
            Some(json!({"email": "other@example.com"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("managed_by_directory_sync"))
    );
    // Roles stay editable while no role mappings exist.
    let (status, body) = app
        .op(
            Method::PATCH,
            &synced_path,
            Some(json!({"role": "builder"})),
        )
        .await;
    assert_eq!(
        (status, body["role"].as_str()),
        (StatusCode::OK, Some("builder"))
    );
    // A leftover manual member can still be removed.
    let (status, _) = app
        .op(
            Method::DELETE,
            &format!("{members}/{}", leftover["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.members(&ws).await.len(), 1);

    // With sync off, members are managed by hand again.
    app.set_sync(&ws, false).await;
    let (status, _) = app
        .op(
            Method::POST,
            &members,
            Some(json!({"email": "new@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .op(
            Method::POST,
            &members,
            Some(json!({"email": "NEW@example.com"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("email_taken"))
    );
}

async fn directory_sync_needs_growth(app: TestApp) {
    let ws = app
        .create_workspace(&TestDirectory::new().organization_id, "starter")
        .await;
    let (status, body) = app
        .op(
            Method::PUT,
            &format!("/api/v1/workspaces/{ws}/directory-sync"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "plan_required");
    let (_, sync) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-sync"),
            None,
        )
        .await;
    assert_eq!(sync["enabled"], false);
}

/// Every workspace route, with a body where it takes one.
fn workspace_routes(ws: &str, member: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, format!("/api/v1/workspaces/{ws}"), None),
        (
            Method::PATCH,
            format!("/api/v1/workspaces/{ws}"),
            Some(json!({"name": "Taken over"})),
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/admin-tokens"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/workspaces/{ws}/directory-sync"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/workspaces/{ws}/directory-sync"),
            Some(json!({"enabled": false})),
        ),
        (
            Method::GET,
            format!("/api/v1/workspaces/{ws}/members"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/members"),
            Some(json!({"email": "intruder@example.com"})),
        ),
        (
            Method::GET,
            format!("/api/v1/workspaces/{ws}/members/{member}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/workspaces/{ws}/members/{member}"),
            Some(json!({"role": "admin"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/workspaces/{ws}/members/{member}"),
            None,
        ),
    ]
}

async fn a_workspace_admin_cannot_see_or_touch_another_workspace(app: TestApp) {
    let mine = app
        .create_workspace(&TestDirectory::new().organization_id, "growth")
        .await;
    let theirs = app
        .create_workspace(&TestDirectory::new().organization_id, "growth")
        .await;
    let (_, their_member) = app
        .op(
            Method::POST,
            &format!("/api/v1/workspaces/{theirs}/members"),
            Some(json!({"email": "them@example.com"})),
        )
        .await;
    let their_member = their_member["id"].as_str().unwrap().to_string();
    let token = app.admin_token(&mine).await;
    for (method, path, body) in workspace_routes(&theirs, &their_member) {
        let (status, problem) = app.call(method.clone(), &path, Some(&token), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {problem}");
        assert_eq!(problem["code"], "not_found");
    }
    // Their member through my workspace's path is not found either.
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{mine}/members/{their_member}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing changed there.
    let (_, ws) = app
        .op(Method::GET, &format!("/api/v1/workspaces/{theirs}"), None)
        .await;
    assert_ne!(ws["name"], "Taken over");
    assert_eq!(app.members(&theirs).await.len(), 1);
    // My own workspace works, and the list shows only mine.
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{mine}/members"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app
        .call(Method::GET, "/api/v1/workspaces", Some(&token), None)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // Operator-only routes are forbidden to admins.
    for (method, path) in [
        (Method::POST, "/api/v1/workspaces".to_string()),
        (Method::GET, "/api/v1/events".to_string()),
        (
            Method::POST,
            format!("/api/v1/workspaces/{mine}/admin-tokens"),
        ),
    ] {
        let (status, problem) = app
            .call(
                method.clone(),
                &path,
                Some(&token),
                Some(json!({"name": "x", "plan": "growth", "organization_id": "org_x"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {problem}");
    }
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/workspaces/{mine}"),
            Some(&token),
            Some(json!({"plan": "enterprise"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn tokens_are_required_and_checked(app: TestApp) {
    let ws = app
        .create_workspace(&TestDirectory::new().organization_id, "growth")
        .await;
    for token in [None, Some("wrong"), Some("")] {
        let (status, problem) = app
            .call(
                Method::GET,
                &format!("/api/v1/workspaces/{ws}"),
                token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(problem["code"], "unauthorized");
    }
    let response = app
        .client
        .get(format!("{}/api/v1/workspaces/{ws}", app.address))
        .header("authorization", format!("Basic {OPERATOR_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Stored tokens are hashes: the table never holds the token itself.
    let token = app.admin_token(&ws).await;
    let hashes: Vec<String> = app
        .db
        .read(|c| {
            use diesel::prelude::*;
            rollcall::db::schema::api_tokens::table
                .select(rollcall::db::schema::api_tokens::token_hash)
                .load(c)
                .map_err(rollcall::db::DbError::from)
        })
        .unwrap();
    assert_eq!(hashes.len(), 1);
    assert_ne!(hashes[0], token);
    assert_eq!(hashes[0], rollcall::tokens::hash_token(&token));
}

async fn wrong_methods_unknown_paths_and_bad_input_get_problems(app: TestApp) {
    let ws = app
        .create_workspace(&TestDirectory::new().organization_id, "growth")
        .await;
    for (method, path) in [
        (Method::DELETE, "/api/v1/workspaces".to_string()),
        (Method::PUT, format!("/api/v1/workspaces/{ws}/members")),
        (Method::GET, "/webhooks/workos".to_string()),
        (Method::POST, "/healthz".to_string()),
    ] {
        let (status, problem) = app.op(method.clone(), &path, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(problem["code"], "method_not_allowed");
    }
    let (status, problem) = app.op(Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let cases = [
        (
            Method::POST,
            "/api/v1/workspaces".to_string(),
            json!({"name": "x", "plan": "platinum", "organization_id": "org_1"}),
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/v1/workspaces".to_string(),
            json!({"name": "  ", "plan": "growth", "organization_id": "org_1"}),
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/v1/workspaces".to_string(),
            json!({"name": "x"}),
            "invalid_body",
        ),
        (
            Method::PATCH,
            format!("/api/v1/workspaces/{ws}"),
            json!({"default_role": "owner"}),
            "invalid_field",
        ),
        (
            Method::PATCH,
            format!("/api/v1/workspaces/{ws}"),
            json!({"colour": "red"}),
            "invalid_body",
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/members"),
            json!({"email": "not-an-email"}),
            "invalid_field",
        ),
        (
            Method::POST,
            format!("/api/v1/workspaces/{ws}/members"),
            json!({"email": "a@b.c", "role": "god"}),
            "invalid_field",
        ),
        (
            Method::PUT,
            format!("/api/v1/workspaces/{ws}/directory-sync"),
            json!({"enabled": "yes"}),
            "invalid_body",
        ),
    ];
    for (method, path, body, code) in cases {
        let (status, problem) = app.op(method.clone(), &path, Some(body.clone())).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {problem}"
        );
        assert_eq!(problem["code"], code, "{method} {path} {body}");
        assert!(problem["title"].is_string() && problem["status"] == 400);
    }
    for query in ["limit=0", "limit=1001", "limit=ten", "status=gone"] {
        let (status, problem) = app
            .op(
                Method::GET,
                &format!("/api/v1/workspaces/{ws}/members?{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(problem["code"], "invalid_parameter");
    }
    let (status, problem) = app
        .op(Method::POST, "/api/v1/workspaces", Some(json!({"name": "Dup", "plan": "growth", "organization_id": app_org(&app, &ws).await})))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("organization_taken"))
    );
}

async fn app_org(app: &TestApp, ws: &str) -> String {
    let (_, w) = app
        .op(Method::GET, &format!("/api/v1/workspaces/{ws}"), None)
        .await;
    w["organization_id"].as_str().unwrap().to_string()
}

async fn lists_page_with_cursors(app: TestApp) {
    let ws = app
        .create_workspace(&TestDirectory::new().organization_id, "free")
        .await;
    for i in 0..5 {
        let (status, _) = app
            .op(
                Method::POST,
                &format!("/api/v1/workspaces/{ws}/members"),
                Some(json!({"email": format!("p{i}@example.com")})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = after
            .as_ref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (_, page) = app
            .op(
                Method::GET,
                &format!("/api/v1/workspaces/{ws}/members?limit=2{query}"),
                None,
            )
            .await;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(
            data.iter()
                .map(|m| m["email"].as_str().unwrap().to_string()),
        );
        match page["list_metadata"]["after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        (0..5)
            .map(|i| format!("p{i}@example.com"))
            .collect::<Vec<_>>()
    );
    let (status, found) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/members?email=P3@Example.com"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let emails: Vec<_> = found["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["p3@example.com"]);
    let (_, none) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/members?email=nobody@example.com"),
            None,
        )
        .await;
    assert_eq!(none["data"], json!([]));
}

async fn health_and_readiness_answer(app: TestApp) {
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, body["database"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
}

async fn nul_characters_are_bad_input_on_every_backend(app: TestApp) {
    let ws = app
        .create_workspace(&TestDirectory::new().organization_id, "free")
        .await;
    for path in [
        "/api/v1/workspaces/a%00b".to_string(),
        "/api/v1/workspaces?after=%00".to_string(),
        format!("/api/v1/workspaces/{ws}/teams?after=x%00"),
    ] {
        let (status, problem) = app.op(Method::GET, &path, None).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_parameter")),
            "{path}"
        );
    }
    let bodies = [
        (
            "/api/v1/workspaces".to_string(),
            json!({"name": "a\u{0}b", "plan": "free", "organization_id": "org_nul"}),
        ),
        (
            "/api/v1/workspaces".to_string(),
            json!({"name": "ok", "plan": "free", "organization_id": "org_\u{0}"}),
        ),
        (
            format!("/api/v1/workspaces/{ws}/members"),
            json!({"email": "a\u{0}@b.c"}),
        ),
        (
            format!("/api/v1/workspaces/{ws}/members"),
            json!({"email": "a@b.c", "first_name": "A\u{0}"}),
        ),
        (
            format!("/api/v1/workspaces/{ws}/teams"),
            json!({"name": "t\u{0}"}),
        ),
    ];
    for (path, body) in bodies {
        let (status, problem) = app.op(Method::POST, &path, Some(body.clone())).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_field")),
            "{path} {body}"
        );
    }
    assert!(app.members(&ws).await.is_empty());
}

crate::on_both_backends!(
    nul_characters_are_bad_input_on_every_backend,
    members_are_locked_while_directory_sync_is_on,
    directory_sync_needs_growth,
    a_workspace_admin_cannot_see_or_touch_another_workspace,
    tokens_are_required_and_checked,
    wrong_methods_unknown_paths_and_bad_input_get_problems,
    lists_page_with_cursors,
    health_and_readiness_answer,
);
