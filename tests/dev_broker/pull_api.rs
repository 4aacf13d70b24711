//! The pull API as the broker answers it: pages and cursors, filters, object shapes and errors.

use crate::helpers::*;
use reqwest::StatusCode;
use rollcall::dev_broker::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

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
            "roles",
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
