//! The dev broker over real HTTP: the pull API's pages, errors and injected faults, the control API, and
//! the signed webhooks it sends, down to the official Python SDK reading it.

#[path = "dev_broker/receiver.rs"]
mod receiver;

use receiver::Receiver;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use rollcall::dev_broker::*;
use rollcall::workos::events::{Event, EventPayload};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_dev_broker_test";

fn generated(users: u32, groups: u32) -> DevBrokerConfig {
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

fn with_webhook(mut config: DevBrokerConfig, receiver: &Receiver) -> DevBrokerConfig {
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

async fn start(config: DevBrokerConfig) -> DevBrokerHandle {
    DevBroker::start(config)
        .await
        .expect("the dev broker starts")
}

/// A GET with the broker's API key; the status, headers and JSON body (Null when not JSON).
async fn get(broker: &DevBrokerHandle, path: &str) -> (StatusCode, HeaderMap, Value) {
    get_with(broker, path, Some(&broker.api_key)).await
}

async fn get_with(
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

async fn control(
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
async fn walk(broker: &DevBrokerHandle, path: &str) -> Vec<Value> {
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

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_unique(ids: &[String]) -> BTreeSet<String> {
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "an id came back twice");
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_with_limit_100_returns_every_user_exactly_once() {
    let broker = start(generated(1234, 40)).await;
    let truth = broker.truth();
    let expected: BTreeSet<String> = truth.users.iter().map(|u| u.id.clone()).collect();
    let dir = &broker.directory_id;

    let desc = ids(&walk(
        &broker,
        &format!("/directory_users?directory={dir}&limit=100"),
    )
    .await);
    assert_eq!(desc.len(), 1234);
    assert_eq!(assert_unique(&desc), expected);
    let asc = ids(&walk(
        &broker,
        &format!("/directory_users?directory={dir}&limit=100&order=asc"),
    )
    .await);
    assert_eq!(asc.iter().rev().cloned().collect::<Vec<_>>(), desc);
    let groups = ids(&walk(
        &broker,
        &format!("/directory_groups?directory={dir}&limit=100"),
    )
    .await);
    assert_eq!(
        assert_unique(&groups),
        truth.groups.iter().map(|g| g.id.clone()).collect()
    );

    // `before` leads back to the page before.
    let (_, _, first) = get(
        &broker,
        &format!("/directory_users?directory={dir}&limit=100"),
    )
    .await;
    assert_eq!(first["list_metadata"]["before"], Value::Null);
    let after = first["list_metadata"]["after"].as_str().unwrap();
    let (_, _, second) = get(
        &broker,
        &format!("/directory_users?directory={dir}&limit=100&after={after}"),
    )
    .await;
    let before = second["list_metadata"]["before"].as_str().unwrap();
    let (_, _, back) = get(
        &broker,
        &format!("/directory_users?directory={dir}&limit=100&before={before}"),
    )
    .await;
    assert_eq!(back["data"], first["data"]);

    // The default page size is 10.
    let (_, _, small) = get(&broker, &format!("/directory_users?directory={dir}")).await;
    assert_eq!(small["data"].as_array().unwrap().len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_filter_lists_exactly_its_members_and_a_user_filter_its_groups() {
    let broker = start(generated(600, 25)).await;
    let truth = broker.truth();
    assert!(
        truth.memberships.len() > 1500,
        "{}",
        truth.memberships.len()
    );
    for group in truth.groups.iter().take(8) {
        let members = ids(&walk(
            &broker,
            &format!("/directory_users?group={}&limit=100", group.id),
        )
        .await);
        let expected: BTreeSet<String> = truth
            .memberships
            .iter()
            .filter(|(g, _)| *g == group.id)
            .map(|(_, u)| u.clone())
            .collect();
        assert_eq!(assert_unique(&members), expected, "{}", group.name);
    }
    for user in truth.users.iter().take(20) {
        let groups = ids(&walk(
            &broker,
            &format!("/directory_groups?user={}&limit=100", user.id),
        )
        .await);
        let expected: BTreeSet<String> = truth
            .memberships
            .iter()
            .filter(|(_, u)| *u == user.id)
            .map(|(g, _)| g.clone())
            .collect();
        assert_eq!(assert_unique(&groups), expected);
    }
    // Users in lists carry an empty deprecated groups[] by default.
    let (_, _, page) = get(
        &broker,
        &format!("/directory_users?directory={}", broker.directory_id),
    )
    .await;
    assert!(page["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["groups"] == json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_user_groups_lists_each_users_groups() {
    let broker = start(DevBrokerConfig {
        fill_user_groups: true,
        ..generated(50, 6)
    })
    .await;
    let truth = broker.truth();
    let users = walk(
        &broker,
        &format!(
            "/directory_users?directory={}&limit=100",
            broker.directory_id
        ),
    )
    .await;
    for user in users {
        let id = user["id"].as_str().unwrap();
        let listed: BTreeSet<String> = user["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect();
        let expected: BTreeSet<String> = truth
            .memberships
            .iter()
            .filter(|(_, u)| u == id)
            .map(|(g, _)| g.clone())
            .collect();
        assert_eq!(listed, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_have_the_broker_shapes() {
    let broker = start(generated(5, 2)).await;
    let dir = broker.directory_id.clone();
    let (status, _, directory) = get(&broker, &format!("/directories/{dir}")).await;
    assert_eq!(status, StatusCode::OK);
    for key in [
        "object",
        "id",
        "organization_id",
        "type",
        "state",
        "name",
        "domains",
        "created_at",
        "updated_at",
    ] {
        assert!(directory.get(key).is_some(), "directory lacks {key}");
    }
    assert_eq!(directory["object"], "directory");
    assert_eq!(directory["type"], "okta scim v2.0");
    let (_, _, listed) = get(&broker, "/directories?organization_id=org_dev").await;
    assert_eq!(listed["data"][0], directory);
    let (_, _, none) = get(&broker, "/directories?organization_id=org_other").await;
    assert_eq!(none["data"], json!([]));

    let (_, _, users) = get(&broker, &format!("/directory_users?directory={dir}")).await;
    let user = &users["data"][0];
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "custom_attributes",
            "directory_id",
            "email",
            "first_name",
            "groups",
            "id",
            "idp_id",
            "last_name",
            "name",
            "object",
            "organization_id",
            "raw_attributes",
            "role",
            "state",
            "updated_at"
        ]
    );
    assert_eq!(user["raw_attributes"], json!({}));
    assert!(user["id"]
        .as_str()
        .unwrap()
        .starts_with("directory_user_01"));
    let created = user["created_at"].as_str().unwrap();
    assert!(
        created.ends_with('Z') && created.len() == 24,
        "{created}: RFC 3339 with milliseconds"
    );
    let (status, _, one) = get(
        &broker,
        &format!("/directory_users/{}", user["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&one, user);

    let (_, _, groups) = get(&broker, &format!("/directory_groups?directory={dir}")).await;
    let group = &groups["data"][0];
    let mut keys: Vec<&str> = group
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "directory_id",
            "id",
            "idp_id",
            "name",
            "object",
            "organization_id",
            "raw_attributes",
            "updated_at"
        ]
    );
    let (_, _, one) = get(
        &broker,
        &format!("/directory_groups/{}", group["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(&one, group);

    // The broker's filters by idp_id and email, within a directory.
    let (_, _, found) = get(
        &broker,
        &format!(
            "/directory_users?directory={dir}&email={}",
            user["email"].as_str().unwrap().to_uppercase()
        ),
    )
    .await;
    assert_eq!(
        ids(found["data"].as_array().unwrap()),
        [user["id"].as_str().unwrap()]
    );
    let (_, _, found) = get(
        &broker,
        &format!(
            "/directory_users?directory={dir}&idp_id={}",
            user["idp_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(found["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_the_broker_shapes() {
    let broker = start(generated(5, 2)).await;
    let dir = broker.directory_id.clone();

    let (status, _, body) = get(&broker, "/directory_users").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["message"], "Validation failed");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["directory", "group"]);
    assert!(body["errors"][0]["code"].is_string());
    let (status, _, body) = get(&broker, "/directory_groups").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][1]["field"], "user");

    for limit in ["0", "101", "ten", "-1"] {
        let (status, _, body) = get(
            &broker,
            &format!("/directory_users?directory={dir}&limit={limit}"),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "limit={limit}");
        assert_eq!(body["errors"][0]["field"], "limit");
    }
    for limit in ["1", "100"] {
        let (status, _, _) = get(
            &broker,
            &format!("/directory_users?directory={dir}&limit={limit}"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "limit={limit}");
    }
    let (status, _, body) = get(
        &broker,
        &format!("/directory_groups?directory={dir}&order=up"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "order");

    for (path, kind) in [
        ("/directories/directory_nope", "Directory"),
        ("/directory_users/directory_user_nope", "Directory user"),
        ("/directory_groups/directory_group_nope", "Directory group"),
        (
            "/directory_users?group=directory_group_nope",
            "Directory group",
        ),
        ("/directory_users?directory=directory_nope", "Directory"),
        (
            "/directory_groups?user=directory_user_nope",
            "Directory user",
        ),
    ] {
        let (status, _, body) = get(&broker, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let id = path.rsplit(['/', '=']).next().unwrap();
        assert_eq!(
            body,
            json!({
                "message": format!("{kind} not found: '{id}'."),
                "code": "entity_not_found",
                "entity_id": id,
            }),
            "{path}"
        );
    }

    // The key is compared whole: a prefix of it, or it with more after, is no key.
    for key in [
        None,
        Some("sk_test_wrong"),
        Some("sk_test_de"),
        Some("sk_test_devx"),
    ] {
        for path in [
            "/directories".to_string(),
            format!("/directory_users?directory={dir}"),
            format!("/directories/{dir}"),
        ] {
            let (status, _, body) = get_with(&broker, &path, key).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with {key:?}");
            assert_eq!(body, json!({ "message": "Unauthorized" }));
        }
    }

    let response = reqwest::Client::new()
        .post(format!("{}/directory_users", broker.base_url))
        .bearer_auth(&broker.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desc_lists_newest_first_and_normal_keeps_the_legacy_cursors() {
    let broker = start(generated(30, 3)).await;
    let dir = broker.directory_id.clone();
    let desc = walk(
        &broker,
        &format!("/directory_users?directory={dir}&order=desc&limit=7"),
    )
    .await;
    let times: Vec<&str> = desc
        .iter()
        .map(|u| u["created_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "desc is newest first");
    let (_, _, default) = get(
        &broker,
        &format!("/directory_users?directory={dir}&limit=7"),
    )
    .await;
    assert_eq!(
        default["data"].as_array().unwrap()[..],
        desc[..7],
        "desc is the default"
    );

    // `normal`: newest first, `before` leads to older users, `after` back to newer ones.
    let (_, _, first) = get(
        &broker,
        &format!("/directory_users?directory={dir}&order=normal&limit=7"),
    )
    .await;
    assert_eq!(first["data"].as_array().unwrap()[..], desc[..7]);
    assert_eq!(first["list_metadata"]["after"], Value::Null);
    let before = first["list_metadata"]["before"].as_str().unwrap();
    let (_, _, older) = get(
        &broker,
        &format!("/directory_users?directory={dir}&order=normal&limit=7&before={before}"),
    )
    .await;
    assert_eq!(older["data"].as_array().unwrap()[..], desc[7..14]);
    let after = older["list_metadata"]["after"].as_str().unwrap();
    let (_, _, newer) = get(
        &broker,
        &format!("/directory_users?directory={dir}&order=normal&limit=7&after={after}"),
    )
    .await;
    assert_eq!(newer["data"], first["data"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_429s_alternate_retry_after_and_500s_can_be_set_at_run_time() {
    let mut config = generated(20, 3);
    config.faults.rate_429 = 1.0;
    let broker = start(config).await;
    let path = format!("/directory_users?directory={}", broker.directory_id);
    let mut with_header = 0;
    for i in 0..4 {
        let (status, headers, body) = get(&broker, &path).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body, json!("Ratelimited"));
        let retry_after = headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        if i % 2 == 0 {
            assert_eq!(retry_after.as_deref(), Some("1"), "request {i}");
            with_header += 1;
        } else {
            assert_eq!(retry_after, None, "request {i}");
        }
    }
    assert_eq!(with_header, 2);
    // Single objects are not failed.
    let (status, _, _) = get(&broker, &format!("/directories/{}", broker.directory_id)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, faults) = control(
        &broker,
        reqwest::Method::POST,
        "/faults",
        json!({ "rate_429": 0.0, "rate_500": 1.0 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(faults["rate_500"], 1.0);
    let (status, _, _) = get(&broker, &path).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, body) = control(
        &broker,
        reqwest::Method::POST,
        "/faults",
        json!({ "rate_500": 2 }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    broker
        .set_faults(&FaultsUpdate {
            rate_500: Some(0.0),
            ..FaultsUpdate::default()
        })
        .unwrap();
    let (status, _, _) = get(&broker, &path).await;
    assert_eq!(status, StatusCode::OK);

    // About a share of requests fail when the rate is below 1.
    broker
        .set_faults(&FaultsUpdate {
            rate_429: Some(0.25),
            ..FaultsUpdate::default()
        })
        .unwrap();
    let mut refused = 0;
    for _ in 0..200 {
        if get(&broker, &path).await.0 == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!((25..=75).contains(&refused), "{refused} of 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_each_directory_to_r_user_requests_a_second() {
    let mut config = generated(20, 3);
    config.faults.rate_limit = Some(4);
    let broker = start(config).await;
    let dir = broker.directory_id.clone();
    let group = broker.truth().groups[0].id.clone();
    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let path = if i % 2 == 0 {
            format!("/directory_users?directory={dir}")
        } else {
            format!("/directory_users?group={group}")
        };
        let (status, headers, body) = get(&broker, &path).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body, json!("Ratelimited"));
            assert_eq!(headers.get("retry-after").unwrap(), "1");
        }
        statuses.push(status.as_u16());
    }
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    }
    // Groups are not limited.
    let (status, _, _) = get(&broker, &format!("/directory_groups?directory={dir}")).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, _) = get(&broker, &format!("/directory_users?directory={dir}")).await;
    assert_eq!(status, StatusCode::OK);
}

fn parse(received: &receiver::Received) -> Event {
    Event::parse(received.event.to_string().as_bytes()).expect("Rollcall can read the event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_sends_the_matching_signed_event() {
    let receiver = Receiver::start(SECRET, 0);
    let broker = start(with_webhook(generated(10, 3), &receiver)).await;
    let truth = broker.truth();
    let (engineering, sales) = (truth.groups[0].id.clone(), truth.groups[1].id.clone());

    let user = broker
        .create_user(NewUser {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            groups: vec![engineering.clone()],
            ..NewUser::default()
        })
        .unwrap();
    assert_eq!(user.email.as_deref(), Some("ada.lovelace@example.com"));
    let received = receiver.wait_for(2).await;
    assert!(
        received.iter().all(|r| r.verified),
        "every delivery verifies"
    );
    assert_eq!(received[0].event["event"], "dsync.user.created");
    assert_eq!(received[0].event["object"], "event");
    assert!(received[0].event["id"]
        .as_str()
        .unwrap()
        .starts_with("event_01"));
    assert!(received[0].event["created_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(
        received[0].event["data"],
        serde_json::to_value(&user).unwrap()
    );
    assert_eq!(received[0].event["data"].get("groups"), None);
    match parse(&received[0]).payload {
        EventPayload::UserCreated(u) => assert_eq!(u.id, user.id),
        other => panic!("{other:?}"),
    }
    assert_eq!(received[1].event["event"], "dsync.group.user_added");
    let added = &received[1].event["data"];
    assert_eq!(added["directory_id"], broker.directory_id.as_str());
    assert_eq!(added["user"]["id"], user.id.as_str());
    assert_eq!(added["group"]["id"], engineering.as_str());
    assert!(matches!(
        parse(&received[1]).payload,
        EventPayload::GroupUserAdded(_)
    ));

    // Membership changes leave the user's updated_at alone; profile changes move it forward.
    broker.move_user(&user.id, &engineering, &sales).unwrap();
    let received = receiver.wait_for(4).await;
    assert_eq!(received[2].event["event"], "dsync.group.user_removed");
    assert_eq!(received[3].event["event"], "dsync.group.user_added");
    assert_eq!(received[3].event["data"]["group"]["id"], sales.as_str());
    assert_eq!(
        received[3].event["data"]["user"]["updated_at"],
        user.updated_at.as_str()
    );

    let updated = broker
        .update_user(
            &user.id,
            UserChanges {
                last_name: Some("King".into()),
                ..UserChanges::default()
            },
        )
        .unwrap();
    assert!(updated.updated_at > user.updated_at);
    let deactivated = broker.deactivate_user(&user.id).unwrap();
    assert!(deactivated.updated_at > updated.updated_at);
    assert_eq!(deactivated.state, "inactive");
    let received = receiver.wait_for(6).await;
    assert_eq!(received[4].event["event"], "dsync.user.updated");
    assert_eq!(received[4].event["data"]["name"], "Ada King");
    assert_eq!(
        received[4].event["data"]["previous_attributes"]["last_name"],
        "Lovelace"
    );
    assert_eq!(received[5].event["data"]["state"], "inactive");

    // A deleted group sends group.deleted and no user_removed; a deleted user sends user.deleted.
    broker.delete_group(&sales).unwrap();
    broker.delete_user(&user.id).unwrap();
    let received = receiver.wait_for(8).await;
    assert_eq!(received[6].event["event"], "dsync.group.deleted");
    assert_eq!(received[6].event["data"]["id"], sales.as_str());
    assert_eq!(received[7].event["event"], "dsync.user.deleted");
    assert!(matches!(
        parse(&received[7]).payload,
        EventPayload::UserDeleted(_)
    ));
    assert!(broker.settle(Duration::from_secs(5)).await);
    assert_eq!(receiver.received().len(), 8);

    // The log shows the same events, newest last.
    let log = broker.events();
    assert_eq!(log.len(), 8);
    for (record, got) in log.iter().zip(receiver.received()) {
        assert_eq!(record.event.id, got.event["id"].as_str().unwrap());
        assert_eq!(record.delivery.state, DeliveryState::Delivered);
        assert_eq!(record.delivery.last_status, Some(200));
    }
    let (_, _, gone) = get(&broker, &format!("/directory_users/{}", user.id)).await;
    assert_eq!(gone["code"], "entity_not_found");
    let (_, _, gone) = get(&broker, &format!("/directory_groups/{sales}")).await;
    assert_eq!(gone["code"], "entity_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_deliveries_are_retried_with_backoff() {
    let receiver = Receiver::start(SECRET, 2);
    let broker = start(with_webhook(generated(3, 1), &receiver)).await;
    broker.create_group(NewGroup::default()).unwrap();
    assert!(broker.settle(Duration::from_secs(10)).await);
    let log = broker.events();
    assert_eq!(log[0].delivery.state, DeliveryState::Delivered);
    assert_eq!(log[0].delivery.attempts, 3);
    assert_eq!(receiver.requests(), 3);
    assert_eq!(receiver.received().len(), 1);

    // A receiver that never accepts: the event fails after the last retry.
    let broker = start(DevBrokerConfig {
        webhook: Some(WebhookTarget {
            url: receiver.url.clone(),
            secret: "not the receiver's secret".into(),
        }),
        retry: RetryPolicy {
            retries: 2,
            backoff: Duration::from_millis(10),
        },
        ..generated(3, 1)
    })
    .await;
    broker.create_group(NewGroup::default()).unwrap();
    assert!(broker.settle(Duration::from_secs(10)).await);
    let log = broker.events();
    assert_eq!(log[0].delivery.state, DeliveryState::Failed);
    assert_eq!(log[0].delivery.attempts, 3);
    assert_eq!(log[0].delivery.last_status, Some(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_and_duplicates_happen_at_about_their_rates() {
    let receiver = Receiver::start(SECRET, 0);
    let mut config = with_webhook(generated(200, 12), &receiver);
    config.seed = 7;
    config.faults.drop = 0.2;
    config.faults.duplicate = 0.3;
    let broker = start(config).await;
    let made = broker.random_changes(400);
    assert!(made >= 400, "{made} events");
    assert!(broker.settle(Duration::from_secs(30)).await);
    let log = broker.events();
    assert_eq!(log.len(), made);
    let counts = receiver.counts();
    let (mut dropped, mut duplicated) = (0, 0);
    for record in &log {
        let got = counts.get(&record.event.id).copied().unwrap_or(0);
        match record.delivery.state {
            DeliveryState::Dropped => {
                dropped += 1;
                assert_eq!(got, 0);
            }
            DeliveryState::Delivered if record.delivery.duplicated => {
                duplicated += 1;
                assert_eq!(got, 2);
                assert_eq!(record.delivery.copies_delivered, 2);
            }
            DeliveryState::Delivered => assert_eq!(got, 1),
            other => panic!("{other:?}"),
        }
    }
    let n = log.len() as f64;
    let drop_share = dropped as f64 / n;
    let duplicate_share = duplicated as f64 / (n - dropped as f64);
    assert!(
        (0.13..=0.27).contains(&drop_share),
        "dropped {dropped} of {n}"
    );
    assert!(
        (0.22..=0.38).contains(&duplicate_share),
        "duplicated {duplicated}"
    );
    assert!(receiver.received().iter().all(|r| r.verified));
    let summary = broker.event_summary();
    assert_eq!(summary.dropped, dropped);
    assert_eq!(summary.duplicated, duplicated);
    assert_eq!(summary.pending, 0);

    // The same seed makes the same decisions.
    let again = Receiver::start(SECRET, 0);
    let mut config = with_webhook(generated(200, 12), &again);
    config.seed = 7;
    config.faults.drop = 0.2;
    config.faults.duplicate = 0.3;
    let twin = start(config).await;
    twin.random_changes(400);
    assert!(twin.settle(Duration::from_secs(30)).await);
    let states = |log: Vec<EventRecord>| -> Vec<(String, DeliveryState, bool)> {
        log.into_iter()
            .map(|r| (r.event.event, r.delivery.state, r.delivery.duplicated))
            .collect()
    };
    assert_eq!(states(twin.events()), states(log));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_and_reordered_deliveries_all_arrive_out_of_order() {
    let receiver = Receiver::start(SECRET, 0);
    let mut config = with_webhook(generated(100, 8), &receiver);
    config.faults.reorder = true;
    config.faults.reorder_window = 10;
    config.faults.delay_ms = 30;
    let broker = start(config).await;
    let made = broker.random_changes(60);
    assert!(broker.settle(Duration::from_secs(20)).await);
    let generated_order: Vec<String> = broker.events().into_iter().map(|r| r.event.id).collect();
    let arrival: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.event["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(arrival.len(), made);
    assert_ne!(arrival, generated_order, "some events arrive out of order");
    let mut sorted = arrival.clone();
    sorted.sort();
    let mut expected = generated_order.clone();
    expected.sort();
    assert_eq!(sorted, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_changes_the_directory_and_lists_events() {
    let broker = start(generated(20, 4)).await;
    let truth = broker.truth();
    let group = truth.groups[0].id.clone();
    let post = reqwest::Method::POST;

    let (status, created) = control(
        &broker,
        post.clone(),
        "/users",
        json!({ "first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com", "groups": [group] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let user = created["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["events"].as_array().unwrap().len(), 2);
    let (status, body) = control(
        &broker,
        post.clone(),
        "/users",
        json!({ "email": "GRACE@example.com" }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "emails are unique: {body}");

    let (status, body) = control(
        &broker,
        reqwest::Method::PATCH,
        &format!("/users/{user}"),
        json!({ "custom_attributes": { "department": "Navy" } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["user"]["custom_attributes"],
        json!({ "department": "Navy" })
    );
    let (status, _) = control(
        &broker,
        post.clone(),
        &format!("/users/{user}/deactivate"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = control(
        &broker,
        post.clone(),
        &format!("/users/{user}/deactivate"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = control(
        &broker,
        post.clone(),
        &format!("/users/{user}/reactivate"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = control(
        &broker,
        post.clone(),
        "/groups",
        json!({ "name": "Compilers" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let compilers = body["group"]["id"].as_str().unwrap().to_string();
    let (status, _) = control(
        &broker,
        post.clone(),
        &format!("/groups/{compilers}/members"),
        json!({ "user_id": user }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = control(
        &broker,
        post.clone(),
        &format!("/groups/{compilers}/members"),
        json!({ "user_id": user }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = control(
        &broker,
        reqwest::Method::PATCH,
        &format!("/groups/{compilers}"),
        json!({ "name": "Compiler Team" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["group"]["name"], "Compiler Team");
    let (status, _) = control(
        &broker,
        reqwest::Method::DELETE,
        &format!("/groups/{compilers}/members/{user}"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = control(
        &broker,
        post.clone(),
        &format!("/users/{user}/move"),
        json!({ "from_group": group, "to_group": compilers }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = control(
        &broker,
        post.clone(),
        "/users/directory_user_nope/deactivate",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "entity_not_found");
    let (status, _) = control(&broker, post.clone(), "/users", json!({ "nickname": "x" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, body) = control(
        &broker,
        post.clone(),
        "/random-changes",
        json!({ "count": 25 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["events"].as_u64().unwrap() >= 25);

    let (_, _, state) = get(&broker, "/_dev/state").await;
    assert_eq!(
        state["counts"],
        serde_json::to_value(broker.counts()).unwrap()
    );
    assert_eq!(state["events"]["not_sent"], state["events"]["total"]);
    let (_, _, events) = get(&broker, "/_dev/events").await;
    let events = events["data"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .take(11)
        .map(|e| e["event"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "dsync.user.created",
            "dsync.group.user_added",
            "dsync.user.updated",
            "dsync.user.updated",
            "dsync.user.updated",
            "dsync.group.created",
            "dsync.group.user_added",
            "dsync.group.updated",
            "dsync.group.user_removed",
            "dsync.group.user_removed",
            "dsync.group.user_added",
        ]
    );
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[0]["delivery"]["state"], "not_sent");
    let (_, _, later) = get(&broker, "/_dev/events?since=10").await;
    assert_eq!(later["data"][0]["seq"], 11);

    // The pull API agrees with the truth after all that.
    let truth = broker.truth();
    let listed = ids(&walk(
        &broker,
        &format!(
            "/directory_users?directory={}&limit=100",
            broker.directory_id
        ),
    )
    .await);
    assert_eq!(
        assert_unique(&listed),
        truth.users.iter().map(|u| u.id.clone()).collect()
    );
    let (_, _, snapshot) = get(&broker, "/_dev/truth").await;
    assert_eq!(
        snapshot["users"].as_array().unwrap().len(),
        truth.users.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_gives_the_same_directory() {
    let a = start(DevBrokerConfig {
        seed: 42,
        ..generated(300, 20)
    })
    .await;
    let b = start(DevBrokerConfig {
        seed: 42,
        ..generated(300, 20)
    })
    .await;
    let c = start(DevBrokerConfig {
        seed: 43,
        ..generated(300, 20)
    })
    .await;
    assert_eq!(a.truth(), b.truth());
    assert_ne!(a.truth().users, c.truth().users);
    let emails: HashSet<String> = a
        .truth()
        .users
        .iter()
        .map(|u| u.email.clone().unwrap())
        .collect();
    assert_eq!(emails.len(), 300, "emails are unique");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.json");
    std::fs::write(
        &path,
        json!({
            "directories": [{ "id": "directory_acme", "organization_id": "org_acme",
                              "type": "azure scim v2.0", "name": "Acme", "domain": "acme.test" }],
            "groups": [
                { "name": "Engineering", "created_at": "2025-02-01T00:00:00.000Z" },
                { "id": "directory_group_ops", "name": "Operations", "created_at": "2025-01-01T00:00:00.000Z" }
            ],
            "users": [
                { "email": "ada@acme.test", "first_name": "Ada", "last_name": "Lovelace",
                  "groups": ["Engineering", "directory_group_ops"], "role": "admin",
                  "custom_attributes": { "department": "Engineering" } },
                { "id": "directory_user_bob", "email": null, "first_name": "Bob", "state": "suspended",
                  "created_at": "2024-12-01T10:00:00Z", "updated_at": "2025-03-01T10:00:00.5Z" }
            ]
        })
        .to_string(),
    )
    .unwrap();
    let broker = start(DevBrokerConfig {
        source: DirectorySource::Load(path),
        ..DevBrokerConfig::default()
    })
    .await;
    let truth = broker.truth();
    assert_eq!(truth.directories.len(), 1);
    assert_eq!(truth.directories[0].id, "directory_acme");
    assert_eq!(truth.directories[0].directory_type, "azure scim v2.0");
    // Creation time orders the lists.
    assert_eq!(truth.groups[0].id, "directory_group_ops");
    assert_eq!(truth.users[0].id, "directory_user_bob");
    assert_eq!(truth.users[0].state, "inactive");
    assert_eq!(truth.users[0].email, None);
    assert_eq!(truth.users[0].updated_at, "2025-03-01T10:00:00.500Z");
    assert_eq!(truth.users[1].role.as_ref().unwrap().slug, "admin");
    assert_eq!(truth.memberships.len(), 2);
    let (status, _, page) = get(
        &broker,
        "/directory_users?directory=directory_acme&order=asc",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["data"][1]["custom_attributes"],
        json!({ "department": "Engineering" })
    );
    assert_eq!(page["data"][1]["organization_id"], "org_acme");

    // A user naming a group that does not exist stops the load.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"users": [{"email": "x@y.z", "groups": ["Nowhere"]}]}"#,
    )
    .unwrap();
    let error = DevBroker::start(DevBrokerConfig {
        source: DirectorySource::Load(bad),
        ..DevBrokerConfig::default()
    })
    .await
    .err()
    .expect("the load fails");
    assert!(format!("{error:#}").contains("Nowhere"), "{error:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_users_are_generated_in_seconds() {
    let started = Instant::now();
    let broker = start(generated(100_000, 1_000)).await;
    let took = started.elapsed();
    let counts = broker.counts();
    assert_eq!(counts.users, 100_000);
    assert_eq!(counts.groups, 1_000);
    assert!(
        (285_000..=315_000).contains(&counts.memberships),
        "{} memberships",
        counts.memberships
    );
    assert!(took < Duration::from_secs(10), "generation took {took:?}");
    let (status, _, page) = get(
        &broker,
        &format!(
            "/directory_users?directory={}&limit=100",
            broker.directory_id
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"].as_array().unwrap().len(), 100);
    // The biggest group pages like any other.
    let (_, _, groups) = get(
        &broker,
        &format!(
            "/directory_groups?directory={}&order=asc&limit=1",
            broker.directory_id
        ),
    )
    .await;
    let biggest = groups["data"][0]["id"].as_str().unwrap();
    let (status, _, page) = get(
        &broker,
        &format!("/directory_users?group={biggest}&limit=100"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page["list_metadata"]["after"].is_string());
}

/// The official WorkOS Python SDK, pointed at the dev broker, lists everything with auto-paging.
///
/// Runs the Python in `ROLLCALL_SDK_PYTHON` (default `python3`), which must have the SDK installed:
/// `python3 -m venv target/sdk-venv && target/sdk-venv/bin/pip install -r tests/sdk/requirements.txt`,
/// then `ROLLCALL_SDK_PYTHON=target/sdk-venv/bin/python`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_lists_every_user_and_group() {
    let python = std::env::var("ROLLCALL_SDK_PYTHON").unwrap_or_else(|_| "python3".into());
    let install = "python3 -m venv target/sdk-venv && target/sdk-venv/bin/pip install -r tests/sdk/requirements.txt, \
                   then run with ROLLCALL_SDK_PYTHON=target/sdk-venv/bin/python (or pip install -r tests/sdk/requirements.txt \
                   into the Python ROLLCALL_SDK_PYTHON names)";
    let probe = tokio::process::Command::new(&python)
        .args(["-c", "import workos"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python:?} (ROLLCALL_SDK_PYTHON): {e}; {install}"));
    assert!(
        probe.status.success(),
        "the workos SDK is not importable by {python:?}: {}\ninstall it: {install}",
        String::from_utf8_lossy(&probe.stderr).trim()
    );

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_listens_on_loopback_unless_remote_clients_are_allowed() {
    for bind in ["0.0.0.0:0", "[::]:0"] {
        let error = DevBroker::start(DevBrokerConfig {
            bind: bind.parse().unwrap(),
            ..generated(1, 1)
        })
        .await
        .err()
        .expect("a non-loopback address is refused");
        let message = format!("{error:#}");
        assert!(message.contains("--allow-remote"), "{message}");
        assert!(message.contains("loopback"), "{message}");
    }
    let broker = start(DevBrokerConfig {
        bind: "0.0.0.0:0".parse().unwrap(),
        allow_remote: true,
        ..generated(1, 1)
    })
    .await;
    let (status, _, _) = get_with(&broker, "/directories", Some(&broker.api_key)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_log_keeps_the_latest_events() {
    let broker = start(DevBrokerConfig {
        max_events: 5,
        ..generated(1, 1)
    })
    .await;
    for n in 0..8 {
        broker
            .create_group(NewGroup {
                name: Some(format!("Group {n}")),
                ..NewGroup::default()
            })
            .expect("a group is made");
    }
    let kept = broker.events();
    let seqs: Vec<u64> = kept.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [4, 5, 6, 7, 8]);
    let summary = broker.event_summary();
    assert_eq!((summary.total, summary.forgotten), (8, 3));
    assert_eq!(summary.not_sent, 5);
    let (_, _, page) = get(&broker, "/_dev/events?since=6").await;
    let seqs: Vec<&Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["seq"])
        .collect();
    assert_eq!(seqs, [&json!(7), &json!(8)]);
    let (_, _, page) = get(&broker, "/_dev/events?since=1").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
}
