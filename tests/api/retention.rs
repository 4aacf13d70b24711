//! Intake under pressure: stored deliveries are pruned after `ROLLCALL_EVENT_RETENTION` (bodies that were
//! not events too), and nothing an attacker sends without the secret is ever stored.

use crate::broker::{at, event};
use crate::helpers::{spawn_app, spawn_app_on, Backend, TestDatabase};
use diesel::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use reqwest::{Method, StatusCode};
use rollcall::db::models::NewWebhookEvent;
use rollcall::db::schema::webhook_events;
use rollcall::db::DbError;
use rollcall::workos::events::Event;
use rollcall::workos::{signature, timestamp};
use std::time::{Duration, Instant};

crate::on_both_backends!(
    backend: old_deliveries_are_pruned_and_failed_ones_kept,
    forged_webhooks_are_never_stored
);

/// The statuses of the stored deliveries, oldest first.
fn statuses(db: &rollcall::db::Database) -> Vec<String> {
    db.read(|c| {
        webhook_events::table
            .order(webhook_events::id)
            .select(webhook_events::status)
            .load(c)
            .map_err(DbError::from)
    })
    .unwrap()
}

async fn old_deliveries_are_pruned_and_failed_ones_kept(backend: Backend) {
    let database = TestDatabase::new(backend);
    let db = database.open();
    let long_ago = timestamp::now() - chrono::TimeDelta::days(40);
    let rows: Vec<NewWebhookEvent> = [
        ("applied", long_ago),
        ("duplicate", long_ago),
        ("skipped", long_ago),
        ("ignored", long_ago),
        ("failed", long_ago),
        ("conflict", long_ago),
        ("invalid", long_ago),
        ("dismissed", long_ago),
        ("applied", timestamp::now()),
    ]
    .into_iter()
    .map(|(status, received_at)| {
        let body = event("dsync.token.created", serde_json::json!({}), &at(1)).to_string();
        let parsed = Event::parse(body.as_bytes()).unwrap();
        NewWebhookEvent {
            status: status.parse().unwrap(),
            ..NewWebhookEvent::received(&parsed, body.into_bytes(), received_at)
        }
    })
    .collect();
    rollcall::intake::event_store::insert_batch(&db, &rows).unwrap();
    drop(db);
    let app = spawn_app_on(database.target.clone(), |s| {
        s.event_retention = Duration::from_secs(30 * 86_400)
    })
    .await;
    // The first pruning runs as the service starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    while statuses(&app.db).len() > 3 {
        assert!(Instant::now() < deadline, "{:?}", statuses(&app.db));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(statuses(&app.db), ["failed", "conflict", "applied"]);
}

async fn forged_webhooks_are_never_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let now = signature::now_ms();
    let body = event("dsync.token.created", serde_json::json!({}), &at(1)).to_string();
    let valid = signature::sign(crate::helpers::SECRET, now, body.as_bytes());
    let mut runner = TestRunner::new(crate::helpers::proptest_config(100));
    // The valid header with one digit of its signature changed, or anything printable; the body changed
    // or not.
    let header = prop_oneof![
        (0..64usize, prop::char::range(' ', '~')).prop_map(move |(at, c)| {
            let mut chars: Vec<char> = valid.chars().collect();
            let at = chars.len() - 64 + at;
            chars[at] = if chars[at].eq_ignore_ascii_case(&c) {
                'g'
            } else {
                c
            };
            chars.into_iter().collect::<String>()
        }),
        "[ -~]{0,300}",
    ];
    let forged = (header, any::<bool>());
    let runtime = tokio::runtime::Handle::current();
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&forged, |(header, tamper)| {
            let body = if tamper {
                body.replace("token", "t0ken")
            } else {
                body.clone()
            };
            let response = runtime.block_on(app.post_webhook_with(body.as_bytes(), Some(&header)));
            prop_assert_ne!(response.status(), StatusCode::OK, "{:?} accepted", header);
            Ok(())
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let (status, stored) = app.op(Method::GET, "/api/v1/events?limit=10", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["data"], serde_json::json!([]));
}
