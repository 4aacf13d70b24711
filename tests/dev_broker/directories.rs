//! Generated and loaded directories: a seed gives the same directory, a file loads, a large one pages.

use crate::helpers::*;
use reqwest::StatusCode;
use rollcall::dev_broker::*;
use serde_json::json;
use std::collections::HashSet;

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
async fn a_hundred_thousand_users_are_generated_and_paged() {
    // How long generating takes is measured by the pull benchmark, which starts such a broker.
    let broker = start(generated(100_000, 1_000)).await;
    let counts = broker.counts();
    assert_eq!(counts.users, 100_000);
    assert_eq!(counts.groups, 1_000);
    assert!(
        (285_000..=315_000).contains(&counts.memberships),
        "{} memberships",
        counts.memberships
    );
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
