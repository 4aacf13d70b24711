//! The control API under `/_dev/`: changes to the directory, the event log, and where the broker listens.

use crate::helpers::*;
use reqwest::StatusCode;
use rollcall::dev_broker::*;
use serde_json::{json, Value};

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

/// A group's role slug: its members carry it in `roles` (else their own role), and a membership or slug
/// change that moves a user's roles is a `dsync.user.updated` with a newer `updated_at`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_role_slug_reaches_its_members_as_user_updates() {
    let broker = start(generated(0, 0)).await;
    let post = reqwest::Method::POST;
    let (status, body) = control(
        &broker,
        post.clone(),
        "/groups",
        json!({ "name": "Admins" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let admins = body["group"]["id"].as_str().unwrap().to_string();
    let (status, body) = control(
        &broker,
        reqwest::Method::PUT,
        &format!("/groups/{admins}/role"),
        json!({ "slug": "admin" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"], json!([]), "no member, no update");
    let (_, body) = control(
        &broker,
        post.clone(),
        "/users",
        json!({ "email": "alan@example.com" }),
    )
    .await;
    let alan = body["user"].clone();
    assert_eq!(alan["role"], json!({ "slug": "member" }));
    assert_eq!(alan["roles"], json!([{ "slug": "member" }]));
    let alan_id = alan["id"].as_str().unwrap().to_string();

    let (status, body) = control(
        &broker,
        post.clone(),
        &format!("/groups/{admins}/members"),
        json!({ "user_id": alan_id }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = logged(&broker, &body);
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["dsync.group.user_added", "dsync.user.updated"]);
    let updated = &events[1].data;
    assert_eq!(updated["roles"], json!([{ "slug": "admin" }]));
    assert_eq!(updated["role"], json!({ "slug": "admin" }));
    assert_eq!(
        updated["previous_attributes"]["roles"],
        json!([{ "slug": "member" }])
    );
    assert!(updated["updated_at"].as_str().unwrap() > alan["updated_at"].as_str().unwrap());

    let (_, body) = control(
        &broker,
        reqwest::Method::PUT,
        &format!("/groups/{admins}/role"),
        json!({ "slug": null }),
    )
    .await;
    let events = logged(&broker, &body);
    assert_eq!(events.len(), 1, "{body}");
    assert_eq!(events[0].data["roles"], json!([{ "slug": "member" }]));
    let (status, body) = control(
        &broker,
        reqwest::Method::PUT,
        &format!("/groups/{admins}/role"),
        json!({ "slug": " " }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// The broker's events a control call answered with (by id), in its order.
fn logged(broker: &DevBrokerHandle, answer: &Value) -> Vec<BrokerEvent> {
    let log = broker.events();
    answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            log.iter()
                .find(|r| r.event.id == id.as_str().unwrap())
                .expect("the event is logged")
                .event
                .clone()
        })
        .collect()
}
