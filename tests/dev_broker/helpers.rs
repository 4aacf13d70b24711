//! What the dev broker tests share: brokers to start, requests to send, and pages to walk.

use crate::receiver::{self, Receiver};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use rollcall::dev_broker::*;
use rollcall::workos::events::Event;
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

pub(crate) const SECRET: &str = "whsec_dev_broker_test";

pub(crate) fn generated(users: u32, groups: u32) -> DevBrokerConfig {
    DevBrokerConfig {
        source: DirectorySource::Generate(GenerateOptions {
            users,
            groups,
            memberships_per_user: 3.0,
            inactive_share: 0.05,
        }),
        ..DevBrokerConfig::default()
    }
}

pub(crate) fn with_webhook(mut config: DevBrokerConfig, receiver: &Receiver) -> DevBrokerConfig {
    config.webhook = Some(WebhookTarget {
        url: receiver.url.clone(),
        secret: SECRET.into(),
    });
    config.retry = RetryPolicy {
        retries: 3,
        backoff: Duration::from_millis(20),
    };
    config
}

pub(crate) async fn start(config: DevBrokerConfig) -> DevBrokerHandle {
    DevBroker::start(config)
        .await
        .expect("the dev broker starts")
}

/// A GET with the broker's API key; the status, headers and JSON body (Null when not JSON).
pub(crate) async fn get(broker: &DevBrokerHandle, path: &str) -> (StatusCode, HeaderMap, Value) {
    get_with(broker, path, Some(&broker.api_key)).await
}

pub(crate) async fn get_with(
    broker: &DevBrokerHandle,
    path: &str,
    key: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", broker.base_url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("the request is answered");
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

pub(crate) async fn control(
    broker: &DevBrokerHandle,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}/_dev{path}", broker.base_url))
        .json(&body)
        .send()
        .await
        .expect("the control request is answered");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Follows `after` from the first page; fails on a repeated cursor.
pub(crate) async fn walk(broker: &DevBrokerHandle, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursors = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let page_path = match &after {
            Some(a) => format!("{path}&after={a}"),
            None => path.to_string(),
        };
        let (status, _, page) = get(broker, &page_path).await;
        assert_eq!(status, StatusCode::OK, "{page_path}: {page}");
        assert_eq!(page["object"], "list");
        items.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["list_metadata"]["after"].as_str() {
            Some(next) => {
                assert!(cursors.insert(next.to_string()), "cursor {next} repeated");
                after = Some(next.to_string());
            }
            None => return items,
        }
    }
}

pub(crate) fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

pub(crate) fn assert_unique(ids: &[String]) -> BTreeSet<String> {
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "an id came back twice");
    set
}

pub(crate) fn parse(received: &receiver::Received) -> Event {
    Event::parse(received.event.to_string().as_bytes()).expect("Rollcall can read the event")
}
