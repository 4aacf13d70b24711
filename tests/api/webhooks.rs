//! `POST /webhooks/workos`: signatures, durability, duplicates, bad input.

use crate::broker::{at, event, TestDirectory};
use crate::helpers::{spawn_app_with, Backend, TestApp, SECRET};
use reqwest::{Method, StatusCode};
use rollcall::workos::signature;
use serde_json::Value;

fn sample_event() -> (TestDirectory, Value) {
    let dir = TestDirectory::new();
    let user = dir.user(
        "directory_user_a",
        "idp-a",
        Some("ada@example.com"),
        "Ada",
        "active",
        &at(1),
    );
    (dir, event("dsync.user.created", user, &at(1)))
}

async fn stored_count(app: &TestApp) -> usize {
    let (status, body) = app.op(Method::GET, "/api/v1/events?limit=1000", None).await;
    assert_eq!(status, StatusCode::OK);
    body["data"].as_array().unwrap().len()
}

async fn assert_refused(app: &TestApp, body: &[u8], header: Option<&str>) {
    let response = app.post_webhook_with(body, header).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "header {header:?}"
    );
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "invalid_signature");
}

async fn a_valid_signature_is_accepted_and_stored(app: TestApp) {
    let (_, event) = sample_event();
    let response = app.post_webhook(event.to_string().as_bytes()).await;
    assert_eq!(response.status(), StatusCode::OK);
    // Durable before the answer: the row is there the moment the 200 arrives.
    assert_eq!(stored_count(&app).await, 1);
    let deliveries = app.deliveries(event["id"].as_str().unwrap()).await;
    assert_eq!(deliveries.len(), 1);
}

async fn bad_signatures_are_refused_and_nothing_is_stored(app: TestApp) {
    let (_, event) = sample_event();
    let body = event.to_string();
    let now = signature::now_ms();
    let wrong_secret = signature::sign("not-the-secret", now, body.as_bytes());
    assert_refused(&app, body.as_bytes(), Some(&wrong_secret)).await;

    let good = signature::sign(SECRET, now, body.as_bytes());
    let tampered = body.replace("Ada", "Eve");
    assert_refused(&app, tampered.as_bytes(), Some(&good)).await;

    // The same object serialised differently is different bytes.
    let reserialised = serde_json::to_string_pretty(&event).unwrap();
    assert_refused(&app, reserialised.as_bytes(), Some(&good)).await;

    let stale = signature::sign(SECRET, now - 181_000, body.as_bytes());
    assert_refused(&app, body.as_bytes(), Some(&stale)).await;
    let future = signature::sign(SECRET, now + 181_000, body.as_bytes());
    assert_refused(&app, body.as_bytes(), Some(&future)).await;
    let in_seconds = signature::sign(SECRET, now / 1000, body.as_bytes());
    assert_refused(&app, body.as_bytes(), Some(&in_seconds)).await;

    assert_refused(&app, body.as_bytes(), None).await;
    for garbage in ["garbage", "t=, v1=", "v1=abc", "t=123", "t=now, v1=00"] {
        assert_refused(&app, body.as_bytes(), Some(garbage)).await;
    }
    assert_eq!(stored_count(&app).await, 0);

    // Still within tolerance either side: accepted.
    let slightly_late = signature::sign(SECRET, now - 170_000, body.as_bytes());
    assert_eq!(
        app.post_webhook_with(body.as_bytes(), Some(&slightly_late))
            .await
            .status(),
        StatusCode::OK
    );
}

async fn a_signed_body_that_is_not_an_event_is_kept_for_operators(app: TestApp) {
    for body in [
        &b"{\"hello\": \"world\"}"[..],
        b"not json at all",
        b"{\"id\":\"event_1\",\"event\":\"dsync.user.created\",\"data\":{}}",
    ] {
        let response = app.post_webhook(body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_payload");
    }
    let (status, body) = app
        .op(Method::GET, "/api/v1/events?status=invalid", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let kept = body["data"].as_array().unwrap();
    assert_eq!(kept.len(), 3);
    let id = kept[0]["id"].as_i64().unwrap();
    let (_, one) = app
        .op(Method::GET, &format!("/api/v1/events/{id}"), None)
        .await;
    assert!(
        one["body"].as_str().unwrap().contains("dsync.user.created"),
        "{one}"
    );
    assert!(one["reason"].as_str().unwrap().contains("data"), "{one}");
}

async fn a_body_over_the_limit_is_413(app: TestApp) {
    let (_, mut event) = sample_event();
    event["data"]["raw_attributes"]["padding"] = Value::String("x".repeat(1 << 20));
    let response = app.post_webhook(event.to_string().as_bytes()).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(stored_count(&app).await, 0);
}

async fn duplicate_delivery_changes_nothing(app: TestApp) {
    let (dir, created) = sample_event();
    let ws = app.synced_workspace(&dir.organization_id).await;
    app.deliver(std::slice::from_ref(&created)).await;
    let members_before = app.members(&ws).await;
    let audit_before = crate::helpers::audit_entries(&app.db);
    assert_eq!(members_before.len(), 1);

    // Redeliveries (the broker's retries, or a captured request replayed within the tolerance) are
    // acknowledged and counted on the stored delivery; their bodies are not stored again.
    for _ in 0..2 {
        let response = app.post_webhook(created.to_string().as_bytes()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let receipt: Value = response.json().await.unwrap();
        assert_eq!(receipt["redelivery"], true, "{receipt}");
    }
    app.wait_applied().await;
    assert_eq!(app.members(&ws).await, members_before);
    let deliveries = app.deliveries(created["id"].as_str().unwrap()).await;
    let stored: Vec<(&str, i64)> = deliveries
        .iter()
        .map(|d| {
            (
                d["status"].as_str().unwrap(),
                d["redeliveries"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(stored, [("applied", 2)]);
    assert_eq!(crate::helpers::audit_entries(&app.db), audit_before);
}

async fn a_redelivery_in_one_batch_is_stored_once(app: TestApp) {
    let (_, created) = sample_event();
    // Sent at once, they reach the store together and are committed in one transaction.
    let body = created.to_string();
    let sends = (0..8).map(|_| app.post_webhook(body.as_bytes()));
    let receipts = futures_util::future::join_all(sends).await;
    let mut redeliveries = 0;
    for response in receipts {
        assert_eq!(response.status(), StatusCode::OK);
        let receipt: Value = response.json().await.unwrap();
        redeliveries += usize::from(receipt["redelivery"] == true);
    }
    assert_eq!(redeliveries, 7);
    let deliveries = app.deliveries(created["id"].as_str().unwrap()).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["redeliveries"], 7);
}

/// The database itself stores an event once: writers that share no lock (here, plain write transactions
/// on several threads at once, as two instances' intake would be without their lock) still end with one
/// row, which counts the others as redeliveries.
async fn an_event_is_stored_once_by_writers_that_share_no_lock(app: TestApp) {
    use rollcall::db::models::NewWebhookEvent;
    use rollcall::intake::event_store::{insert_deliveries, Stored};
    use rollcall::workos::{events::Event, timestamp};
    let (_, created) = sample_event();
    let body = created.to_string().into_bytes();
    let delivery = NewWebhookEvent::received(&Event::parse(&body).unwrap(), body, timestamp::now());
    let writers = 6;
    let start = std::sync::Arc::new(std::sync::Barrier::new(writers));
    let outcomes: Vec<Stored> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                let (db, start, delivery) = (app.db.clone(), start.clone(), delivery.clone());
                scope.spawn(move || {
                    start.wait();
                    db.write(|conn| insert_deliveries(conn, std::slice::from_ref(&delivery)))
                        .expect("store the delivery")[0]
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let new = outcomes.iter().filter(|o| **o == Stored::New).count();
    assert_eq!(new, 1, "{outcomes:?}");
    let deliveries = app.deliveries(created["id"].as_str().unwrap()).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0]["redeliveries"], writers as i64 - 1);
}

async fn a_forged_flood_is_refused_before_the_body_is_read(app: TestApp) {
    let (_, created) = sample_event();
    let now = signature::now_ms();
    let body = vec![b'x'; 1024 * 1024 - 16];
    let forged_headers = [
        // Thousands of candidates: refused for their number, not hashed.
        format!("t={now}{}", ", v1=00".repeat(4000)),
        format!("t={now}{}", format!(", v1={}", "00".repeat(32)).repeat(5)),
        format!("t={now}, v1=00"),
        format!("t={}, v1={}", now - 600_000, "00".repeat(32)),
    ];
    for header in &forged_headers {
        assert_refused(&app, &body, Some(header)).await;
    }
    // Well-formed but wrong: the body is read and the MAC compared, once per secret.
    let wrong = format!("t={now}, v1={}", "ab".repeat(32));
    assert_refused(&app, &body, Some(&wrong)).await;
    assert_eq!(stored_count(&app).await, 0);
    // A valid webhook still goes through.
    let response = app.post_webhook(created.to_string().as_bytes()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(stored_count(&app).await, 1);
}

async fn token_events_and_unknown_types_are_acknowledged_and_ignored(app: TestApp) {
    let token = event(
        "dsync.token.created",
        serde_json::json!({"id": "token_1"}),
        &at(1),
    );
    let unknown = event("kitten.created", serde_json::json!({"id": "meow"}), &at(1));
    app.deliver(&[token.clone(), unknown.clone()]).await;
    for e in [token, unknown] {
        let deliveries = app.deliveries(e["id"].as_str().unwrap()).await;
        assert_eq!(deliveries[0]["status"], "ignored");
    }
}

crate::on_both_backends!(
    a_valid_signature_is_accepted_and_stored,
    bad_signatures_are_refused_and_nothing_is_stored,
    a_signed_body_that_is_not_an_event_is_kept_for_operators,
    a_body_over_the_limit_is_413,
    duplicate_delivery_changes_nothing,
    a_redelivery_in_one_batch_is_stored_once,
    an_event_is_stored_once_by_writers_that_share_no_lock,
    a_forged_flood_is_refused_before_the_body_is_read,
    token_events_and_unknown_types_are_acknowledged_and_ignored,
);

async fn rotation(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.webhook_secrets = vec!["whsec_old_0123456789".into(), "whsec_new_0123456789".into()]
    })
    .await;
    let (_, event) = sample_event();
    for secret in ["whsec_old_0123456789", "whsec_new_0123456789"] {
        let body =
            crate::broker::event("dsync.token.created", event["data"].clone(), &at(1)).to_string();
        let header = signature::sign(secret, signature::now_ms(), body.as_bytes());
        assert_eq!(
            app.post_webhook_with(body.as_bytes(), Some(&header))
                .await
                .status(),
            StatusCode::OK,
            "{secret}"
        );
    }
    let body = event.to_string();
    let retired = signature::sign(SECRET, signature::now_ms(), body.as_bytes());
    assert_eq!(
        app.post_webhook_with(body.as_bytes(), Some(&retired))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn no_secret_configured_refuses_everything(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.webhook_secrets.clear()).await;
    let (_, event) = sample_event();
    let response = app.post_webhook(event.to_string().as_bytes()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no webhook secret"),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_secret_verifies_during_rotation_sqlite() {
    rotation(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_secret_verifies_during_rotation_postgres() {
    rotation(Backend::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_configured_refuses_everything_sqlite() {
    no_secret_configured_refuses_everything(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_configured_refuses_everything_postgres() {
    no_secret_configured_refuses_everything(Backend::Postgres).await
}

/// Versions before intake dedupe stored a redelivered event again; the migration that makes a delivery's
/// key unique folds those rows into the first, which counts them.
async fn stored_redeliveries_are_folded_into_the_first_row(backend: Backend) {
    use diesel::connection::SimpleConnection;
    use diesel_migrations::{FileBasedMigrations, MigrationHarness};
    use rollcall::db::DbConnection;
    let database = crate::helpers::TestDatabase::new(backend);
    database.open();
    let folder = |backend: &str| {
        FileBasedMigrations::from_path(format!(
            "{}/migrations/{backend}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("the migrations folder")
    };
    let mut conn = database.target.establish().unwrap();
    let before_unique_keys = "INSERT INTO webhook_events \
         (event_id, body_hash, body, status, attempts, received_at, source, lane, redeliveries) VALUES \
         ('event_a', NULL, 'x', 'applied', 1, '2026-01-01 00:00:00', 'webhook', 'd', 1), \
         ('event_a', NULL, 'x', 'duplicate', 1, '2026-01-01 00:00:01', 'webhook', 'd', 0), \
         ('event_b', NULL, 'x', 'applied', 1, '2026-01-01 00:00:02', 'webhook', 'd', 0), \
         ('event_a', NULL, 'x', 'duplicate', 1, '2026-01-01 00:00:03', 'webhook', 'd', 0), \
         (NULL, 'hash_c', 'x', 'invalid', 0, '2026-01-01 00:00:04', 'webhook', '', 0), \
         (NULL, 'hash_c', 'x', 'invalid', 0, '2026-01-01 00:00:05', 'webhook', '', 0)";
    // Back to just before the migration that made the keys unique, whatever came after it.
    // (Its folder is 2026-12-06-000016_unique_delivery_keys; diesel names it by the digits.)
    const UNIQUE_KEYS: &str = "20261206000016";
    match &mut conn {
        DbConnection::Sqlite(c) => {
            while !c
                .revert_last_migration(folder("sqlite"))
                .unwrap()
                .to_string()
                .replace('-', "")
                .starts_with(UNIQUE_KEYS)
            {}
            c.batch_execute(before_unique_keys).unwrap();
        }
        DbConnection::Postgresql(c) => {
            while !c
                .revert_last_migration(folder("postgresql"))
                .unwrap()
                .to_string()
                .replace('-', "")
                .starts_with(UNIQUE_KEYS)
            {}
            c.batch_execute(before_unique_keys).unwrap();
        }
    }
    let db = database.open();
    let rows: Vec<(Option<String>, Option<String>, String, i32)> = db
        .read(|conn| {
            use diesel::prelude::*;
            use rollcall::db::schema::webhook_events as e;
            e::table
                .order(e::id)
                .select((e::event_id, e::body_hash, e::status, e::redeliveries))
                .load(conn)
                .map_err(rollcall::db::DbError::from)
        })
        .unwrap();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        rows,
        [
            (some("event_a"), None, "applied".into(), 3),
            (some("event_b"), None, "applied".into(), 0),
            (None, some("hash_c"), "invalid".into(), 1),
        ]
    );
}

mod folded {
    crate::on_both_backends!(backend: stored_redeliveries_are_folded_into_the_first_row);
    use super::*;
}
