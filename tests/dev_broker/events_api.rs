//! The Events API (`GET /events`): every change's event, oldest first, filtered, paged by cursor or from a
//! time, within the retention window, with the pull API's auth.

use crate::helpers::*;
use crate::receiver::Receiver;
use reqwest::{Method, StatusCode};
use rollcall::dev_broker::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Every event the broker generated, oldest first, as its log holds them.
fn logged(broker: &DevBrokerHandle) -> Vec<Value> {
    broker
        .events()
        .into_iter()
        .map(|r| serde_json::to_value(r.event).unwrap())
        .collect()
}

fn new_user(email: &str) -> NewUser {
    serde_json::from_value(json!({ "email": email })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_listed_oldest_first_as_its_webhook_sent_it_dropped_ones_included() {
    let receiver = Receiver::start(SECRET, 0);
    let mut config = with_webhook(generated(40, 5), &receiver);
    config.faults.drop = 0.5;
    let broker = start(config).await;
    let made = broker.random_changes(30);
    assert!(made >= 30, "{made} events");
    assert!(broker.settle(Duration::from_secs(20)).await);
    let summary = broker.event_summary();
    assert!(summary.dropped > 0, "{summary:?}");

    let listed = walk(&broker, "/events?limit=100&order=desc").await;
    assert_eq!(
        listed,
        logged(&broker),
        "the log, oldest first, whatever the order asked"
    );
    let listed_ids = assert_unique(&ids(&listed));
    let mut sorted = ids(&listed);
    sorted.sort();
    assert_eq!(ids(&listed), sorted, "event ids grow oldest first");

    // Each delivered webhook carried exactly the listed event; the dropped ones are listed all the same.
    let received = receiver.received();
    assert_eq!(received.len() as u64, summary.delivered);
    let by_id: HashMap<&str, &Value> = listed
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    for r in &received {
        let id = r.event["id"].as_str().unwrap();
        assert_eq!(Some(&&r.event), by_id.get(id), "webhook {id}");
    }
    assert!(listed_ids.len() > received.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_the_cursor_to_the_end_with_the_default_and_a_small_limit() {
    let broker = start(generated(20, 4)).await;
    broker.random_changes(40);
    let everything = logged(&broker);
    assert!(everything.len() > 25, "{} events", everything.len());

    let (status, _, first) = get(&broker, "/events").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["object"], "list");
    assert_eq!(
        first["data"].as_array().unwrap().len(),
        10,
        "the default limit"
    );
    assert_eq!(first["list_metadata"]["after"], everything[9]["id"]);
    assert_eq!(first["list_metadata"]["before"], Value::Null);

    let paged = walk(&broker, "/events?limit=7").await;
    assert_eq!(paged, everything);

    // The last page names no next cursor; the newest event as a cursor gives an empty page.
    let newest = everything.last().unwrap()["id"].as_str().unwrap();
    let (status, _, page) = get(&broker, &format!("/events?after={newest}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"], json!([]));
    assert_eq!(page["list_metadata"]["after"], Value::Null);

    // A change after the end shows up after the same cursor.
    broker
        .create_user(new_user("late@example.com"))
        .expect("a user");
    let (_, _, page) = get(&broker, &format!("/events?after={newest}")).await;
    let data = page["data"].as_array().unwrap();
    assert_eq!(data[0]["event"], "dsync.user.created");
    assert_eq!(data[0]["data"]["email"], "late@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_organization_filter_what_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.json");
    std::fs::write(
        &path,
        json!({
            "directories": [
                {"id": "directory_acme", "organization_id": "org_acme", "type": "okta scim v2.0", "name": "Acme"},
                {"id": "directory_globex", "organization_id": "org_globex", "type": "okta scim v2.0", "name": "Globex"}
            ],
            "groups": [{"id": "directory_group_eng", "directory_id": "directory_acme", "name": "Engineering"}]
        })
        .to_string(),
    )
    .unwrap();
    let broker = start(DevBrokerConfig {
        source: DirectorySource::Load(path),
        ..DevBrokerConfig::default()
    })
    .await;
    let user = |directory: &str, email: &str| -> NewUser {
        serde_json::from_value(json!({ "directory_id": directory, "email": email })).unwrap()
    };
    let ada = broker
        .create_user(user("directory_acme", "ada@acme.test"))
        .unwrap();
    broker
        .create_user(user("directory_globex", "hank@globex.test"))
        .unwrap();
    broker.add_to_group("directory_group_eng", &ada.id).unwrap();
    broker.rename_group("directory_group_eng", "Eng").unwrap();
    broker.deactivate_user(&ada.id).unwrap();

    let kinds = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect()
    };
    let all = walk(&broker, "/events?limit=100").await;
    assert_eq!(
        kinds(&all),
        [
            "dsync.user.created",
            "dsync.user.created",
            "dsync.group.user_added",
            "dsync.group.updated",
            "dsync.user.updated"
        ]
    );
    let users = walk(
        &broker,
        "/events?events=dsync.user.created,%20dsync.user.updated&limit=1",
    )
    .await;
    assert_eq!(
        kinds(&users),
        [
            "dsync.user.created",
            "dsync.user.created",
            "dsync.user.updated"
        ]
    );
    let acme = walk(&broker, "/events?organization_id=org_acme&limit=2").await;
    assert_eq!(
        kinds(&acme),
        [
            "dsync.user.created",
            "dsync.group.user_added",
            "dsync.group.updated",
            "dsync.user.updated"
        ]
    );
    let globex = walk(
        &broker,
        "/events?organization_id=org_globex&events=dsync.user.created",
    )
    .await;
    assert_eq!(globex.len(), 1);
    assert_eq!(globex[0]["data"]["email"], "hank@globex.test");
    let none = walk(&broker, "/events?events=dsync.group.deleted").await;
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_start_and_range_end_select_by_creation_time() {
    let broker = start(generated(10, 2)).await;
    broker.random_changes(5);
    let earlier = logged(&broker);
    let mark = broker.mark_time();
    broker.random_changes(5);
    let everything = logged(&broker);
    let later = &everything[earlier.len()..];
    assert!(!later.is_empty());

    let since = mark.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // The first page starts at the time; the next ones follow its cursor (a cursor and a time never go
    // together).
    let (status, _, first) = get(&broker, &format!("/events?range_start={since}&limit=3")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let mut listed = first["data"].as_array().unwrap().clone();
    if let Some(after) = first["list_metadata"]["after"].as_str() {
        listed.extend(walk(&broker, &format!("/events?limit=3&after={after}")).await);
    }
    assert_eq!(listed, later);
    let until = walk(&broker, &format!("/events?range_end={since}&limit=100")).await;
    assert_eq!(until, earlier);

    // A cursor and a start time together, or a time that is no time, are refused naming the parameter.
    let after = earlier[0]["id"].as_str().unwrap();
    let (status, _, body) = get(
        &broker,
        &format!("/events?range_start={since}&after={after}"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "range_start", "{body}");
    let (status, _, body) = get(&broker, "/events?range_start=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "range_start", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_events_are_no_longer_served_and_a_cursor_into_them_is_a_400() {
    let broker = start(generated(10, 2)).await;
    broker.random_changes(12);
    let everything = logged(&broker);
    let n = everything.len();
    assert!(n >= 12);
    let cursor = everything[4]["id"].as_str().unwrap().to_string();
    let (status, _, page) = get(&broker, &format!("/events?after={cursor}&limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"].as_array().unwrap()[..], everything[5..]);

    // Expiring through the cursor's event pushes the cursor out of the window.
    let (status, answer) = control(
        &broker,
        Method::POST,
        "/events/expire",
        json!({ "through": cursor }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["oldest_served"], everything[5]["id"]);
    let (status, _, body) = get(&broker, &format!("/events?after={cursor}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("`after`"), "{message}");
    assert_eq!(walk(&broker, "/events?limit=100").await, everything[5..]);

    // A range_start from before the window is a 400 naming it; one inside is served.
    let expired_at = everything[4]["created_at"].as_str().unwrap();
    let (status, _, body) = get(&broker, &format!("/events?range_start={expired_at}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("range_start"),
        "{body}"
    );
    let (status, _, body) = get(&broker, "/events?range_start=2020-01-01T00:00:00Z").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Before an event id: the events older than it; everything: an empty list, and any cursor is a 400.
    let (status, _) = control(
        &broker,
        Method::POST,
        "/events/expire",
        json!({ "before": everything[8]["id"] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(walk(&broker, "/events?limit=100").await, everything[8..]);
    broker.expire_events(&EventExpiry::All).unwrap();
    assert_eq!(walk(&broker, "/events?limit=10").await, Vec::<Value>::new());
    let newest = everything[n - 1]["id"].as_str().unwrap();
    let (status, _, _) = get(&broker, &format!("/events?after={newest}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(broker.events().len(), n, "expiry keeps the deliveries' log");

    // Bad expiry requests are refused and expire nothing more.
    for body in [
        json!({}),
        json!({ "all": true, "through": newest }),
        json!({ "through": "event_unknown" }),
        json!({ "before": "no time" }),
    ] {
        let (status, answer) = control(&broker, Method::POST, "/events/expire", body.clone()).await;
        assert!(status.is_client_error(), "{body}: {status} {answer}");
    }
    broker.create_user(new_user("after@example.com")).unwrap();
    assert_eq!(walk(&broker, "/events?limit=10").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_window_and_the_log_cap_both_expire_events() {
    let mut config = generated(10, 2);
    config.event_retention = Duration::from_secs(1);
    let broker = start(config).await;
    broker.random_changes(3);
    let old = logged(&broker);
    let cursor = old.last().unwrap()["id"].as_str().unwrap().to_string();
    assert_eq!(walk(&broker, "/events?limit=10").await, old);
    broker.advance_clock(Duration::from_secs(2));
    assert_eq!(walk(&broker, "/events?limit=10").await, Vec::<Value>::new());
    let (status, _, body) = get(&broker, &format!("/events?after={cursor}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Events forgotten past --max-events are expired too: a start time that would include them is a 400.
    let mut config = generated(10, 2);
    config.max_events = 5;
    let broker = start(config).await;
    broker.random_changes(8);
    let mark = broker
        .mark_time()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    broker.random_changes(8);
    let kept = logged(&broker);
    assert_eq!(kept.len(), 5);
    assert!(broker.event_summary().forgotten >= 11);
    assert_eq!(walk(&broker, "/events?limit=2").await, kept);
    let (status, _, body) = get(&broker, &format!("/events?range_start={mark}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let newest = chrono::DateTime::parse_from_rfc3339(kept[4]["created_at"].as_str().unwrap())
        .unwrap()
        + chrono::Duration::milliseconds(1);
    let after_all = newest.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (status, _, body) = get(&broker, &format!("/events?range_start={after_all}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_outside_1_to_100_are_a_422_the_key_is_required_and_faults_apply() {
    let broker = start(generated(10, 2)).await;
    broker.random_changes(3);
    for limit in ["0", "101", "-1", "ten"] {
        let (status, _, body) = get(&broker, &format!("/events?limit={limit}")).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit={limit}: {body}"
        );
        assert_eq!(body["errors"][0]["field"], "limit");
    }
    for limit in ["1", "100"] {
        let (status, _, _) = get(&broker, &format!("/events?limit={limit}")).await;
        assert_eq!(status, StatusCode::OK, "limit={limit}");
    }
    let (status, _, _) = get_with(&broker, "/events", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = get_with(&broker, "/events", Some("sk_test_wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = reqwest::Client::new()
        .post(format!("{}/events", broker.base_url))
        .bearer_auth(&broker.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // The injected faults of list requests reach it too.
    broker
        .set_faults(&FaultsUpdate {
            rate_500: Some(1.0),
            ..FaultsUpdate::default()
        })
        .unwrap();
    let (status, _, _) = get(&broker, "/events").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_following_the_cursor_while_changes_happen_misses_nothing() {
    let broker = start(generated(30, 4)).await;
    let url = format!("{}/_dev/random-changes", broker.base_url);
    let writer = tokio::spawn(async move {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            let response = client
                .post(&url)
                .json(&json!({ "count": 1 }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
    });
    let mut read: Vec<Value> = Vec::new();
    let mut writing = true;
    loop {
        let path = match read.last() {
            Some(last) => format!("/events?limit=3&after={}", last["id"].as_str().unwrap()),
            None => "/events?limit=3".to_string(),
        };
        let (status, _, page) = get(&broker, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let data = page["data"].as_array().unwrap();
        if data.is_empty() && !writing {
            break;
        }
        read.extend(data.iter().cloned());
        writing = !writer.is_finished();
    }
    writer.await.unwrap();
    assert_eq!(read, logged(&broker));
    assert!(read.len() >= 200);
}
