//! Token life cycle: names, expiry, listing, revocation and last use, over the API and the command line.

use crate::broker::unique;
use crate::cli::{rollcall, text};
use crate::helpers::TestApp;
use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use rollcall::db::schema::api_tokens;
use rollcall::db::{DatabaseTarget, DbError};
use rollcall::secret::ExposeSecret;
use rollcall::workos::timestamp::{self, Timestamp};
use serde_json::{json, Value};
use std::process::Output;
use std::time::{Duration, Instant};

crate::on_both_backends!(
    a_named_expiring_token_is_listed_without_its_secret,
    a_revoked_token_is_refused_and_no_longer_listed,
    an_expired_token_is_refused,
    a_used_token_records_when_to_the_minute,
    bad_names_and_lifetimes_are_refused,
    only_operators_list_and_revoke_tokens,
    the_command_line_creates_lists_and_revokes_tokens,
);

async fn workspace(app: &TestApp) -> String {
    app.create_workspace(&format!("org_{}", unique()), "growth")
        .await
}

fn tokens_path(ws: &str) -> String {
    format!("/api/v1/workspaces/{ws}/admin-tokens")
}

/// Creates an admin token with this body; returns the answer.
async fn create(app: &TestApp, ws: &str, body: Value) -> Value {
    let (status, created) = app.op(Method::POST, &tokens_path(ws), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// The workspace's listed tokens, all of them.
async fn listed(app: &TestApp, ws: &str) -> Vec<Value> {
    let (status, list) = app
        .op(
            Method::GET,
            &format!("{}?limit=1000", tokens_path(ws)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["data"].as_array().unwrap().clone()
}

fn ids(tokens: &[Value]) -> Vec<&str> {
    tokens.iter().map(|t| t["id"].as_str().unwrap()).collect()
}

/// The status of a call with `token` to its workspace.
async fn status_with(app: &TestApp, ws: &str, token: &str) -> StatusCode {
    app.call(
        Method::GET,
        &format!("/api/v1/workspaces/{ws}"),
        Some(token),
        None,
    )
    .await
    .0
}

fn time(value: &Value) -> Timestamp {
    timestamp::parse(
        value
            .as_str()
            .unwrap_or_else(|| panic!("{value} is not a time")),
    )
    .unwrap_or_else(|| panic!("{value} is not a time"))
}

async fn a_named_expiring_token_is_listed_without_its_secret(app: TestApp) {
    let ws = workspace(&app).await;
    let before = timestamp::now();
    let created = create(
        &app,
        &ws,
        json!({ "name": " CI deploys ", "expires_in": "30d" }),
    )
    .await;
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("rc_"), "{created}");
    assert_eq!(created["name"], "CI deploys");
    // Times are shown to the millisecond.
    let life = time(&created["expires_at"]) - before;
    let thirty_days = chrono::Duration::days(30);
    assert!(
        life > thirty_days - chrono::Duration::milliseconds(1)
            && life < thirty_days + chrono::Duration::minutes(1),
        "{created}"
    );
    assert_eq!(status_with(&app, &ws, &token).await, StatusCode::OK);

    // A token made without a body has no name and does not expire.
    let plain = app.admin_token(&ws).await;
    let listed = listed(&app, &ws).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let named = &listed[0];
    assert_eq!(named["id"], created["id"]);
    assert_eq!(named["name"], "CI deploys");
    assert_eq!(named["expires_at"], created["expires_at"]);
    assert_eq!(named["created_at"], created["created_at"]);
    let mut keys: Vec<&str> = named
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["created_at", "expires_at", "id", "last_used_at", "name"]
    );
    assert_eq!(listed[1]["name"], Value::Null);
    assert_eq!(listed[1]["expires_at"], Value::Null);
    let shown = serde_json::to_string(&listed).unwrap();
    for secret in [&token, &plain] {
        assert!(!shown.contains(secret.as_str()), "{shown}");
        assert!(
            !shown.contains(&rollcall::tokens::hash_token(secret)),
            "{shown}"
        );
    }

    // Listed a page at a time, oldest first.
    let (status, first) = app
        .op(Method::GET, &format!("{}?limit=1", tokens_path(&ws)), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(
        ids(first["data"].as_array().unwrap()),
        [listed[0]["id"].as_str().unwrap()]
    );
    let after = first["list_metadata"]["after"].as_str().unwrap();
    let (_, second) = app
        .op(
            Method::GET,
            &format!("{}?limit=1&after={after}", tokens_path(&ws)),
            None,
        )
        .await;
    assert_eq!(
        ids(second["data"].as_array().unwrap()),
        [listed[1]["id"].as_str().unwrap()]
    );
    assert_eq!(second["list_metadata"]["after"], Value::Null);

    // Another workspace's tokens are not listed.
    let other = workspace(&app).await;
    app.admin_token(&other).await;
    let theirs = self::listed(&app, &other).await;
    assert_eq!(theirs.len(), 1);
    assert!(!ids(&listed).contains(&theirs[0]["id"].as_str().unwrap()));
}

async fn a_revoked_token_is_refused_and_no_longer_listed(app: TestApp) {
    let ws = workspace(&app).await;
    let revoked = create(&app, &ws, json!({ "name": "leaked" })).await;
    let kept = create(&app, &ws, json!({ "name": "kept" })).await;
    let (revoked_token, kept_token) = (
        revoked["token"].as_str().unwrap(),
        kept["token"].as_str().unwrap(),
    );
    assert_eq!(status_with(&app, &ws, revoked_token).await, StatusCode::OK);

    let path = format!("{}/{}", tokens_path(&ws), revoked["id"].as_str().unwrap());
    let (status, body) = app.op(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    let (status, problem) = app
        .call(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}"),
            Some(revoked_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["code"], "unauthorized");
    assert_eq!(
        ids(&listed(&app, &ws).await),
        [kept["id"].as_str().unwrap()]
    );
    assert_eq!(status_with(&app, &ws, kept_token).await, StatusCode::OK);

    // Revoking again, an unknown id, or another workspace's token is 404 and changes nothing.
    let other = workspace(&app).await;
    let theirs = create(&app, &other, json!({})).await;
    for path in [
        path.clone(),
        format!("{}/tok_unknown", tokens_path(&ws)),
        format!("{}/{}", tokens_path(&ws), theirs["id"].as_str().unwrap()),
    ] {
        let (status, problem) = app.op(Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {problem}");
        assert_eq!(problem["code"], "not_found");
    }
    let their_token = theirs["token"].as_str().unwrap();
    assert_eq!(status_with(&app, &other, their_token).await, StatusCode::OK);
    let (status, _) = app
        .op(
            Method::DELETE,
            &format!(
                "/api/v1/workspaces/ws_unknown/admin-tokens/{}",
                kept["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(status_with(&app, &ws, kept_token).await, StatusCode::OK);
}

/// Sets a stored token's expiry directly in the database.
async fn set_expiry(app: &TestApp, id: &str, at: Timestamp) {
    let (db, id) = (app.db.clone(), id.to_string());
    tokio::task::spawn_blocking(move || {
        db.write(|c| {
            diesel::update(api_tokens::table.find(&id))
                .set(api_tokens::expires_at.eq(at))
                .execute(c)
                .map_err(DbError::from)
        })
    })
    .await
    .unwrap()
    .expect("the expiry is set");
}

async fn an_expired_token_is_refused(app: TestApp) {
    let ws = workspace(&app).await;
    let expiring = create(&app, &ws, json!({ "expires_in": "1h" })).await;
    let token = expiring["token"].as_str().unwrap();
    assert_eq!(status_with(&app, &ws, token).await, StatusCode::OK);
    set_expiry(
        &app,
        expiring["id"].as_str().unwrap(),
        timestamp::now() - chrono::Duration::seconds(1),
    )
    .await;
    assert_eq!(
        status_with(&app, &ws, token).await,
        StatusCode::UNAUTHORIZED
    );
    // Still listed, as expired, until revoked.
    let listed = listed(&app, &ws).await;
    assert_eq!(ids(&listed), [expiring["id"].as_str().unwrap()]);
    assert!(time(&listed[0]["expires_at"]) < timestamp::now());

    // A lifetime counts from creation: a token that lives a second expires a second after it was made
    // (refused once past, as above).
    let before = timestamp::now();
    let short = create(&app, &ws, json!({ "expires_in": "1s" })).await;
    let after = timestamp::now();
    let expires_at = time(&short["expires_at"]);
    let second = chrono::Duration::seconds(1);
    assert!(
        expires_at >= before + second - chrono::Duration::milliseconds(1)
            && expires_at <= after + second,
        "{short}"
    );
}

/// The listed `last_used_at` of token `id`.
async fn last_used(app: &TestApp, ws: &str, id: &str) -> Value {
    listed(app, ws)
        .await
        .into_iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not listed"))["last_used_at"]
        .clone()
}

async fn a_used_token_records_when_to_the_minute(app: TestApp) {
    let ws = workspace(&app).await;
    let created = create(&app, &ws, json!({ "name": "used" })).await;
    let (id, token) = (
        created["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    assert_eq!(last_used(&app, &ws, id).await, Value::Null);
    let before = timestamp::now();
    assert_eq!(status_with(&app, &ws, token).await, StatusCode::OK);
    // Written in the background, so the request does not wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let at = last_used(&app, &ws, id).await;
        if !at.is_null() {
            break at;
        }
        assert!(Instant::now() < deadline, "last_used_at was never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Shown to the millisecond, so it may read up to a millisecond before `before`.
    let at = time(&first);
    assert!(
        at > before - chrono::Duration::milliseconds(1) && at <= timestamp::now(),
        "{first}"
    );
    // That further uses within the minute write nothing is the unit test of `TokenUse` (a clock of its
    // own, rather than a wait here proving an absence).
}

async fn bad_names_and_lifetimes_are_refused(app: TestApp) {
    let ws = workspace(&app).await;
    let long_name = "n".repeat(201);
    for (body, code, field) in [
        (
            json!({ "expires_in": "soon" }),
            "invalid_field",
            "expires_in:",
        ),
        (json!({ "expires_in": "0" }), "invalid_field", "expires_in:"),
        (
            json!({ "expires_in": "3w" }),
            "invalid_field",
            "expires_in:",
        ),
        (
            json!({ "expires_in": "3651d" }),
            "invalid_field",
            "expires_in:",
        ),
        (
            json!({ "expires_in": "99999999999999999d" }),
            "invalid_field",
            "expires_in:",
        ),
        (json!({ "name": "" }), "invalid_field", "name:"),
        (json!({ "name": "a\u{0}b" }), "invalid_field", "name:"),
        (json!({ "name": long_name }), "invalid_field", "name:"),
        (
            json!({ "expires_in": 30 }),
            "invalid_body",
            "expected a string",
        ),
        (json!({ "scopes": ["all"] }), "invalid_body", "scopes"),
    ] {
        let (status, problem) = app
            .op(Method::POST, &tokens_path(&ws), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
        assert_eq!(problem["code"], code, "{body}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{body}: {detail}");
    }
    let (status, problem) = app
        .call(
            Method::POST,
            &tokens_path(&ws),
            Some(crate::helpers::OPERATOR_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{problem}");
    // Only the last, valid request made a token.
    assert_eq!(listed(&app, &ws).await.len(), 1);
    let response = app
        .client
        .post(format!("{}{}", app.address, tokens_path(&ws)))
        .bearer_auth(crate::helpers::OPERATOR_TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_body");
    assert_eq!(listed(&app, &ws).await.len(), 1);
}

async fn only_operators_list_and_revoke_tokens(app: TestApp) {
    let ws = workspace(&app).await;
    let admin = app.admin_token(&ws).await;
    let id = listed(&app, &ws).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = workspace(&app).await;
    for (target, expected) in [
        (&ws, StatusCode::FORBIDDEN),
        (&other, StatusCode::NOT_FOUND),
    ] {
        for (method, path) in [
            (Method::GET, tokens_path(target)),
            (Method::POST, tokens_path(target)),
            (Method::DELETE, format!("{}/{id}", tokens_path(target))),
        ] {
            let (status, problem) = app.call(method.clone(), &path, Some(&admin), None).await;
            assert_eq!(status, expected, "{method} {path}: {problem}");
        }
    }
    let (_, problem) = app
        .call(Method::GET, &tokens_path(&ws), Some(&admin), None)
        .await;
    assert_eq!(problem["code"], "forbidden");
    // The admin token was not revoked by its own attempt.
    assert_eq!(status_with(&app, &ws, &admin).await, StatusCode::OK);
    assert_eq!(ids(&listed(&app, &ws).await), [id.as_str()]);
}

// ---------------------------------------------------------------------------------------------------
// The command line

/// `rollcall token ARGS` on the test service's database.
async fn token_command(app: &TestApp, args: &[&str]) -> Output {
    let url = match app.db.target() {
        DatabaseTarget::Sqlite(path) => path.clone(),
        DatabaseTarget::Postgres(url) => url.expose_secret().to_owned(),
    };
    let mut command = rollcall();
    command.env("DATABASE_URL", url).arg("token").args(args);
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

/// Runs a token command that must succeed; returns its stdout and stderr.
async fn token_ok(app: &TestApp, args: &[&str]) -> (String, String) {
    let output = token_command(app, args).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "{args:?}: {}\n{stdout}\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// Runs a token command that must fail; returns its stderr.
async fn token_fails(app: &TestApp, args: &[&str]) -> String {
    let output = token_command(app, args).await;
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{args:?} succeeded\n{stderr}");
    stderr
}

/// The token id `token create` announces on stderr.
fn announced_id(stderr: &str) -> String {
    stderr
        .split_whitespace()
        .find(|w| w.starts_with("tok_"))
        .unwrap_or_else(|| panic!("no token id in {stderr}"))
        .trim_end_matches([',', ';'])
        .to_string()
}

async fn the_command_line_creates_lists_and_revokes_tokens(app: TestApp) {
    let ws = workspace(&app).await;

    let (stdout, stderr) = token_ok(
        &app,
        &["create", "--name", "ops laptop", "--expires-in", "30d"],
    )
    .await;
    let operator = stdout.trim().to_string();
    assert!(operator.starts_with("rc_"), "{stdout}");
    assert!(
        stderr.contains("operator token") && stderr.contains("expiring"),
        "{stderr}"
    );
    let operator_id = announced_id(&stderr);
    let (status, _) = app
        .call(Method::GET, &tokens_path(&ws), Some(&operator), None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an operator token may list admin tokens"
    );

    let (stdout, stderr) =
        token_ok(&app, &["create", "--workspace", &ws, "--name", "support"]).await;
    let admin = stdout.trim().to_string();
    assert!(stderr.contains("workspace admin token"), "{stderr}");
    let admin_id = announced_id(&stderr);
    assert_eq!(status_with(&app, &ws, &admin).await, StatusCode::OK);
    let listed = listed(&app, &ws).await;
    assert_eq!(ids(&listed), [admin_id.as_str()]);
    assert_eq!(listed[0]["name"], "support");

    // Without --workspace, the operator tokens; with it, the workspace's. Never the token itself.
    let (stdout, _) = token_ok(&app, &["list"]).await;
    assert!(
        stdout.contains(&operator_id) && stdout.contains("ops laptop"),
        "{stdout}"
    );
    assert!(!stdout.contains(&admin_id), "{stdout}");
    let (stdout, _) = token_ok(&app, &["list", "--workspace", &ws]).await;
    assert!(
        stdout.contains(&admin_id) && stdout.contains("support"),
        "{stdout}"
    );
    assert!(!stdout.contains(&operator_id), "{stdout}");
    for secret in [&operator, &admin] {
        assert!(!stdout.contains(secret.as_str()));
    }

    token_ok(&app, &["revoke", &operator_id]).await;
    let (status, _) = app
        .call(Method::GET, &tokens_path(&ws), Some(&operator), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (stdout, stderr) = token_ok(&app, &["list"]).await;
    assert!(!stdout.contains(&operator_id), "{stdout}");
    assert!(stderr.contains("no operator tokens"), "{stderr}");
    assert_eq!(status_with(&app, &ws, &admin).await, StatusCode::OK);

    let stderr = token_fails(&app, &["revoke", &operator_id]).await;
    assert!(stderr.contains("already revoked"), "{stderr}");
    let stderr = token_fails(&app, &["create", "--expires-in", "3w"]).await;
    assert!(stderr.contains("--expires-in"), "{stderr}");
    let stderr = token_fails(&app, &["create", "--name", ""]).await;
    assert!(stderr.contains("name"), "{stderr}");
    let stderr = token_fails(&app, &["create", "--workspace", "ws_unknown"]).await;
    assert!(stderr.contains("no workspace ws_unknown"), "{stderr}");
    let (stdout, _) = token_ok(&app, &["list"]).await;
    assert!(
        stdout.trim().is_empty(),
        "failed commands made no token: {stdout}"
    );

    let (help, _) = token_ok(&app, &["--help"]).await;
    for command in ["create", "list", "revoke"] {
        assert!(help.contains(command), "{command} in {help}");
    }
    let (help, _) = token_ok(&app, &["create", "--help"]).await;
    for flag in ["--workspace", "--name", "--expires-in"] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}
