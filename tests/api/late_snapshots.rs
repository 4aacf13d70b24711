//! Rule 20, as a property: after a pull has inferred deletions the webhooks never brought (they were
//! dropped), the dropped snapshots and duplicates arriving late, in any order, never make a deleted or
//! inactive user active again, and never bring a deleted group back.

use crate::broker::{at, event, TestDirectory};
use crate::full_pull::pull;
use crate::helpers::{Backend, TestApp};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rollcall::broker::UsersWithGroups;
use rollcall::directory_sync::reconcile::DeprovisionGuard;
use rollcall::workos::events::{DirectoryGroup, DirectoryUser};
use rollcall::workos::timestamp;
use serde_json::Value;
use std::collections::BTreeSet;

/// How a user ends at the broker.
#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Active,
    Inactive,
    Deleted,
}

/// One user: how many snapshots the broker made of them (updated minute by minute), how they end, and
/// which snapshots the webhooks delivered before the pull.
#[derive(Debug, Clone)]
struct UserStory {
    snapshots: u32,
    end: End,
    delivered: Vec<bool>,
}

#[derive(Debug, Clone)]
struct Scenario {
    users: Vec<UserStory>,
    /// Groups: whether each is deleted at the broker, and whether its snapshots were delivered.
    groups: Vec<(bool, bool)>,
    /// The order the late deliveries come in (indices, shuffled), and how many come twice.
    late_order: Vec<usize>,
    duplicates: usize,
}

fn user_story() -> impl Strategy<Value = UserStory> {
    (
        1u32..5,
        prop_oneof![Just(End::Active), Just(End::Inactive), Just(End::Deleted)],
    )
        .prop_flat_map(|(snapshots, end)| {
            proptest::collection::vec(any::<bool>(), snapshots as usize).prop_map(
                move |delivered| UserStory {
                    snapshots,
                    end,
                    delivered,
                },
            )
        })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        proptest::collection::vec(user_story(), 1..8),
        proptest::collection::vec((any::<bool>(), any::<bool>()), 0..3),
        any::<u64>(),
        0usize..4,
    )
        .prop_map(|(users, groups, seed, duplicates)| {
            let late = users.iter().map(|u| u.snapshots as usize).sum::<usize>() + groups.len();
            let mut late_order: Vec<usize> = (0..late).collect();
            // A deterministic shuffle from the seed, so a failing case shrinks and replays.
            let mut state = seed | 1;
            for i in (1..late_order.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                late_order.swap(i, (state % (i as u64 + 1)) as usize);
            }
            Scenario {
                users,
                groups,
                late_order,
                duplicates,
            }
        })
}

/// Snapshot `k` (0-based) of user `i`: active until the last one of an inactive user.
fn snapshot(dir: &TestDirectory, i: usize, story: &UserStory, k: u32) -> Value {
    let last = k + 1 == story.snapshots;
    let state = if last && story.end == End::Inactive {
        "inactive"
    } else {
        "active"
    };
    dir.user(
        &format!("directory_user_{}_{i}", dir.tag),
        &format!("idp-{i}"),
        Some(&format!("u{i}-{}@example.com", dir.tag.to_lowercase())),
        &format!("Name{k}"),
        state,
        &at(1 + k),
    )
}

async fn check(app: &TestApp, scenario: Scenario) -> Result<(), TestCaseError> {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    app.deliver(&[event("dsync.activated", dir.object(&at(0)), &at(0))])
        .await;
    // Before the pull: the snapshots the webhooks delivered; the rest are kept for later.
    let mut on_time = Vec::new();
    let mut late = Vec::new();
    for (i, story) in scenario.users.iter().enumerate() {
        for k in 0..story.snapshots {
            let kind = if k == 0 {
                "dsync.user.created"
            } else {
                "dsync.user.updated"
            };
            let sent = event(kind, snapshot(&dir, i, story, k), &at(1 + k));
            if story.delivered[k as usize] {
                on_time.push(sent.clone());
            }
            late.push(sent);
        }
    }
    let group = |j: usize| {
        dir.group(
            &format!("directory_group_{}_{j}", dir.tag),
            &format!("g{j}"),
            &at(2),
        )
    };
    for (j, (_, delivered)) in scenario.groups.iter().enumerate() {
        let sent = event("dsync.group.updated", group(j), &at(2));
        if *delivered {
            on_time.push(sent.clone());
        }
        late.push(sent);
    }
    // Every user was created active and every group seen once (those webhooks came through; the later
    // changes may not have), so the pull has something to delete.
    let mut first_seen: Vec<Value> = scenario
        .users
        .iter()
        .enumerate()
        .map(|(i, story)| {
            let mut created = snapshot(&dir, i, story, 0);
            created["state"] = "active".into();
            created["updated_at"] = at(0).into();
            event("dsync.user.created", created, &at(0))
        })
        .collect();
    first_seen.extend((0..scenario.groups.len()).map(|j| {
        let mut created = group(j);
        created["updated_at"] = at(0).into();
        event("dsync.group.created", created, &at(0))
    }));
    app.deliver(&first_seen).await;
    app.deliver(&on_time).await;

    // The pull: deleted users and groups are not listed; the others are, as they end.
    let users: Vec<DirectoryUser> = scenario
        .users
        .iter()
        .enumerate()
        .filter(|(_, s)| s.end != End::Deleted)
        .map(|(i, s)| serde_json::from_value(snapshot(&dir, i, s, s.snapshots - 1)).unwrap())
        .collect();
    let groups: Vec<DirectoryGroup> = scenario
        .groups
        .iter()
        .enumerate()
        .filter(|(_, (deleted, _))| !deleted)
        .map(|(j, _)| serde_json::from_value(group(j)).unwrap())
        .collect();
    let listed = UsersWithGroups {
        users,
        groups,
        memberships: BTreeSet::new(),
        requests: 0,
        from_user_groups: true,
        unreadable: Vec::new(),
    };
    let force = DeprovisionGuard {
        max_share: 0.2,
        min_count: 10,
        force: true,
    };
    pull(app, &ws, &dir.id, &listed, timestamp::now(), force);

    // Late: every snapshot again, in a shuffled order, some twice.
    let mut again: Vec<Value> = scenario
        .late_order
        .iter()
        .map(|i| late[*i].clone())
        .collect();
    let twice: Vec<Value> = again.iter().take(scenario.duplicates).cloned().collect();
    again.extend(twice);
    app.deliver(&again).await;

    let members = app.members(&ws).await;
    for (i, story) in scenario.users.iter().enumerate() {
        let email = format!("u{i}-{}@example.com", dir.tag.to_lowercase());
        let member = members.iter().find(|m| m["email"] == email.as_str());
        let status = member.map(|m| m["status"].as_str().unwrap().to_string());
        let expected = match story.end {
            End::Active => "active",
            End::Inactive | End::Deleted => "deprovisioned",
        };
        prop_assert_eq!(
            status.as_deref(),
            Some(expected),
            "user {} ({:?})",
            i,
            story
        );
    }
    let (_, listed_groups) = app
        .op(
            reqwest::Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-groups?limit=100"),
            None,
        )
        .await;
    let live: BTreeSet<String> = listed_groups["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    for (j, (deleted, _)) in scenario.groups.iter().enumerate() {
        let id = format!("directory_group_{}_{j}", dir.tag);
        prop_assert_eq!(live.contains(&id), !deleted, "group {}", j);
    }
    Ok(())
}

fn never_resurrects(backend: Backend) {
    crate::helpers::check_property(backend, 48, scenario(), |app, scenario| {
        Box::pin(check(app, scenario))
    });
}

#[test]
fn late_stale_snapshots_never_bring_back_what_a_pull_deleted_sqlite() {
    never_resurrects(Backend::Sqlite)
}

#[test]
fn late_stale_snapshots_never_bring_back_what_a_pull_deleted_postgres() {
    never_resurrects(Backend::Postgres)
}
