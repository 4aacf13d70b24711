//! The admin screens in a real headless Chromium, walking the product page's steps against the real
//! service and a dev broker, on SQLite and on PostgreSQL. Here: the setup both walks share.

mod admin_walk;
mod browser;
// The API tests' harness, shared rather than copied; this crate uses part of it.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod operator_walk;
mod roles_walk;
mod scale_walk;
mod scim_walk;
mod webhooks_walk;

use helpers::{Backend, TestApp};
use reqwest::{Method, StatusCode};
use rollcall::dev_broker::{
    DevBroker, DevBrokerConfig, DevBrokerHandle, DirectorySource, GenerateOptions,
};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A dev broker with a small directory of organization `org_dev`, and the service pulling from it.
pub(crate) async fn service_and_broker(backend: Backend) -> (TestApp, DevBrokerHandle) {
    service_and_broker_of(backend, 24, 3).await
}

/// A dev broker with a directory of `users` users in `groups` groups, all active, of organization
/// `org_dev`, and the service pulling from it.
pub(crate) async fn service_and_broker_of(
    backend: Backend,
    users: u32,
    groups: u32,
) -> (TestApp, DevBrokerHandle) {
    let broker = DevBroker::start(DevBrokerConfig {
        source: DirectorySource::Generate(GenerateOptions {
            users,
            groups,
            memberships_per_user: 1.5,
            inactive_share: 0.0,
        }),
        ..DevBrokerConfig::default()
    })
    .await
    .expect("the dev broker starts");
    let app = helpers::spawn_app_with(backend, |s| {
        s.workos_api_key = Some(broker.api_key.clone().into());
        s.workos_api_base = broker.base_url.clone();
        s.user_listing_rate = 0.0;
        s.pull_on_activation = true;
    })
    .await;
    (app, broker)
}

/// Waits until the directory's latest full pull has ended; returns it.
pub(crate) async fn pulled(app: &TestApp, directory: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, runs) = app
            .op(
                Method::GET,
                &format!("/api/v1/sync-runs?directory={directory}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{runs}");
        if let Some(run) = runs["data"].as_array().and_then(|r| r.first()) {
            if !["queued", "running"].contains(&run["status"].as_str().unwrap()) {
                return run.clone();
            }
        }
        assert!(Instant::now() < deadline, "no finished pull of {directory}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.op(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}
