//! The official WorkOS Python SDK reading the dev broker.

use crate::helpers::*;

async fn sdk_python() -> String {
    crate::python::sdk_python("workos").await
}

/// The official WorkOS Python SDK, pointed at the dev broker, lists everything with auto-paging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_lists_every_user_and_group() {
    let python = sdk_python().await;
    let broker = start(generated(250, 30)).await;
    let counts = broker.counts();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/list_with_sdk.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&broker.base_url)
        .arg(&broker.api_key)
        .arg(&broker.directory_id)
        .arg(counts.users.to_string())
        .arg(counts.groups.to_string())
        .arg(counts.memberships.to_string())
        .output()
        .await
        .expect("the SDK script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("listed 250 users and 30 groups"),
        "{stdout}"
    );
}

/// The SDK's events listing pages through the dev broker's Events API: auto-paging, `after` by hand, a
/// type filter and `range_start`, finding every event the broker made, oldest first, dropped webhooks
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_pages_through_the_events() {
    let python = sdk_python().await;
    let receiver = crate::receiver::Receiver::start(SECRET, 0);
    let mut config = with_webhook(generated(40, 6), &receiver);
    config.faults.drop = 1.0;
    let broker = start(config).await;
    broker.random_changes(30);
    let mark = broker
        .mark_time()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    broker.random_changes(8);
    assert!(broker.settle(std::time::Duration::from_secs(10)).await);
    assert!(receiver.received().is_empty(), "every webhook was dropped");
    let logged: Vec<String> = broker.events().into_iter().map(|r| r.event.id).collect();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/events_with_sdk.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&broker.base_url)
        .arg(&broker.api_key)
        .arg(&mark)
        .output()
        .await
        .expect("the SDK script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let found: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the script's JSON");
    let listed: Vec<String> = serde_json::from_value(found["events"].clone()).unwrap();
    assert_eq!(listed, logged);
    let created = broker
        .events()
        .iter()
        .filter(|r| r.event.event == "dsync.user.created")
        .count();
    assert_eq!(found["user_created"], created);
    let since: Vec<String> = serde_json::from_value(found["since"].clone()).unwrap();
    assert!(!since.is_empty() && since.len() < logged.len(), "{since:?}");
}
