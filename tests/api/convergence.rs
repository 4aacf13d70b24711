//! Property: whatever a directory does, and however its webhooks arrive (dropped, duplicated, in any
//! order), webhooks then one full pull leave Rollcall equal to the broker's truth: active members, groups,
//! team members and roles. Random sequences of user, group and membership changes, including returning
//! users (a new broker id for the same `idp_id`) and group deletions; a failing case is shrunk. A reader of
//! the change feed from its start then rebuilds exactly the members, teams and team members the API lists.
//!
//! `PROPTEST_CASES` sets the cases per backend (default 128).

use crate::broker::{at, event, TestDirectory};
use crate::full_pull::{map_roles, pull, team_following, team_roster, GUARD};
use crate::helpers::{Backend, TestApp};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::{Method, StatusCode};
use rollcall::broker::UsersWithGroups;
use rollcall::directory_sync::reconcile::DeprovisionGuard;
use rollcall::workos::timestamp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Groups of every case: the first two are linked to a team each, the first and the third mapped to roles.
const GROUPS: usize = 3;
const ROLES: [(usize, &str); 2] = [(0, "builder"), (2, "admin")];

/// One change at the broker; indexes pick among the users created so far (changes that make no sense at
/// that point, such as a second live user for one `idp_id`, are left out).
#[derive(Debug, Clone)]
enum Change {
    CreateUser { person: u8 },
    SetActive { user: u8, active: bool },
    NewEmail { user: u8 },
    DeleteUser { user: u8 },
    AddMember { group: u8, user: u8 },
    RemoveMember { group: u8, user: u8 },
    DeleteGroup { group: u8 },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0..4u8).prop_map(|person| Change::CreateUser { person }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(user, active)| Change::SetActive { user, active }),
        1 => any::<u8>().prop_map(|user| Change::NewEmail { user }),
        2 => any::<u8>().prop_map(|user| Change::DeleteUser { user }),
        4 => (0..GROUPS as u8, any::<u8>()).prop_map(|(group, user)| Change::AddMember { group, user }),
        2 => (0..GROUPS as u8, any::<u8>()).prop_map(|(group, user)| Change::RemoveMember { group, user }),
        1 => (0..GROUPS as u8).prop_map(|group| Change::DeleteGroup { group }),
    ]
}

/// How one event is delivered: 0 dropped, 1 once, 2 twice; and a key that orders the deliveries.
#[derive(Debug, Clone)]
struct Delivery {
    copies: u8,
    order: u8,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    (
        prop_oneof![2 => Just(0u8), 6 => Just(1u8), 2 => Just(2u8)],
        any::<u8>(),
    )
        .prop_map(|(copies, order)| Delivery { copies, order })
}

#[derive(Debug, Clone)]
struct Scenario {
    changes: Vec<Change>,
    deliveries: Vec<Delivery>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(change(), 1..30),
        prop::collection::vec(delivery(), 1..40),
    )
        .prop_map(|(changes, deliveries)| Scenario {
            changes,
            deliveries,
        })
}

struct User {
    id: String,
    idp: String,
    email: String,
    active: bool,
    deleted: bool,
    updated: u32,
}

/// The broker's truth, and the events it sent to get there.
struct Broker {
    dir: TestDirectory,
    users: Vec<User>,
    groups_deleted: [bool; GROUPS],
    memberships: BTreeSet<(usize, usize)>,
    events: Vec<Value>,
    clock: u32,
}

impl Broker {
    fn new(dir: TestDirectory) -> Self {
        Self {
            dir,
            users: Vec::new(),
            groups_deleted: [false; GROUPS],
            memberships: BTreeSet::new(),
            events: Vec::new(),
            clock: 1,
        }
    }

    fn group_id(&self, group: usize) -> String {
        format!("directory_group_{}_{group}", self.dir.tag)
    }

    fn group(&self, group: usize, minute: u32) -> Value {
        self.dir.group(
            &self.group_id(group),
            &format!("Group {group}"),
            &at(minute),
        )
    }

    fn user(&self, user: usize) -> Value {
        let u = &self.users[user];
        let state = if u.active { "active" } else { "inactive" };
        let first = "Prop";
        self.dir
            .user(&u.id, &u.idp, Some(&u.email), first, state, &at(u.updated))
    }

    /// A live user picked by `index`, if there is one.
    fn live(&self, index: u8) -> Option<usize> {
        let live: Vec<usize> = (0..self.users.len())
            .filter(|u| !self.users[*u].deleted)
            .collect();
        (!live.is_empty()).then(|| live[index as usize % live.len()])
    }

    fn send(&mut self, kind: &str, data: Value) {
        self.events.push(event(kind, data, &at(self.clock)));
    }

    fn apply(&mut self, change: &Change) {
        self.clock += 1;
        let now = self.clock;
        match *change {
            Change::CreateUser { person } => {
                let idp = format!("person{person}");
                if self.users.iter().any(|u| u.idp == idp && !u.deleted) {
                    return;
                }
                self.users.push(User {
                    id: format!("directory_user_{}_{}", self.dir.tag, self.users.len()),
                    email: format!("{idp}@example.com"),
                    idp,
                    active: true,
                    deleted: false,
                    updated: now,
                });
                let data = self.user(self.users.len() - 1);
                self.send("dsync.user.created", data);
            }
            Change::SetActive { user, active } => {
                let Some(user) = self.live(user) else { return };
                if self.users[user].active == active {
                    return;
                }
                self.users[user].active = active;
                self.users[user].updated = now;
                let data = self.user(user);
                self.send("dsync.user.updated", data);
            }
            Change::NewEmail { user } => {
                let Some(user) = self.live(user) else { return };
                let u = &mut self.users[user];
                u.email = format!("{}.{now}@example.com", u.idp);
                u.updated = now;
                let data = self.user(user);
                self.send("dsync.user.updated", data);
            }
            Change::DeleteUser { user } => {
                let Some(user) = self.live(user) else { return };
                self.users[user].deleted = true;
                self.users[user].updated = now;
                self.memberships.retain(|(_, u)| *u != user);
                let data = self.user(user);
                self.send("dsync.user.deleted", data);
            }
            Change::AddMember { group, user } => {
                let group = group as usize;
                let Some(user) = self.live(user) else { return };
                if self.groups_deleted[group] || !self.memberships.insert((group, user)) {
                    return;
                }
                let data = self.dir.membership(&self.user(user), &self.group(group, 0));
                self.send("dsync.group.user_added", data);
            }
            Change::RemoveMember { group, user } => {
                let group = group as usize;
                let Some(user) = self.live(user) else { return };
                if !self.memberships.remove(&(group, user)) {
                    return;
                }
                let data = self.dir.membership(&self.user(user), &self.group(group, 0));
                self.send("dsync.group.user_removed", data);
            }
            Change::DeleteGroup { group } => {
                let group = group as usize;
                if self.groups_deleted[group] {
                    return;
                }
                self.groups_deleted[group] = true;
                self.memberships.retain(|(g, _)| *g != group);
                let data = self.group(group, now);
                self.send("dsync.group.deleted", data);
            }
        }
    }

    /// What a complete listing shows now.
    fn listing(&self) -> UsersWithGroups {
        let users = (0..self.users.len())
            .filter(|u| !self.users[*u].deleted)
            .map(|u| serde_json::from_value(self.user(u)).unwrap())
            .collect();
        let groups = (0..GROUPS)
            .filter(|g| !self.groups_deleted[*g])
            .map(|g| serde_json::from_value(self.group(g, 0)).unwrap())
            .collect();
        let memberships = self
            .memberships
            .iter()
            .map(|(g, u)| (self.group_id(*g), self.users[*u].id.clone()))
            .collect();
        UsersWithGroups {
            users,
            groups,
            memberships,
            requests: 0,
            from_user_groups: true,
            unreadable: Vec::new(),
        }
    }

    /// Live active users.
    fn active(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.users.len()).filter(|u| self.users[*u].active && !self.users[*u].deleted)
    }
}

fn rank(role: &str) -> u8 {
    ["viewer", "builder", "admin", "owner"]
        .iter()
        .position(|r| *r == role)
        .unwrap_or(0) as u8
}

/// What Rollcall shows, in the same terms as the expectation built from the broker's truth.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// Active members as `(email, directory user id, role)`.
    active: BTreeSet<(String, String, String)>,
    groups: BTreeSet<String>,
    /// Each linked team's members, by the group it follows.
    teams: BTreeMap<usize, BTreeSet<String>>,
}

async fn check(app: &TestApp, scenario: Scenario) -> Result<(), TestCaseError> {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    let mut broker = Broker::new(dir);
    let mut setup = vec![event("dsync.activated", broker.dir.object(&at(0)), &at(0))];
    setup.extend((0..GROUPS).map(|g| event("dsync.group.created", broker.group(g, 0), &at(0))));
    app.deliver(&setup).await;
    let mut teams = BTreeMap::new();
    for group in 0..2 {
        let id = broker.group_id(group);
        teams.insert(
            group,
            team_following(app, &ws, &format!("Team {group}"), &[id]).await,
        );
    }
    let mappings: Vec<(String, &str)> = ROLES
        .iter()
        .map(|(g, role)| (broker.group_id(*g), *role))
        .collect();
    map_roles(app, &ws, &mappings).await;
    let (status, workspace) = app
        .op(Method::GET, &format!("/api/v1/workspaces/{ws}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let default_role = workspace["default_role"].as_str().unwrap().to_string();

    for change in &scenario.changes {
        broker.apply(change);
    }
    // Deliver: some dropped, some twice, in the order the keys give.
    let mut sent: Vec<(u8, usize, &Value)> = Vec::new();
    for (i, event) in broker.events.iter().enumerate() {
        let how = &scenario.deliveries[i % scenario.deliveries.len()];
        for copy in 0..how.copies {
            sent.push((how.order.wrapping_add(copy * 101), i, event));
        }
    }
    sent.sort_by_key(|(order, i, _)| (*order, *i));
    for (_, _, event) in &sent {
        let response = app.post_webhook(event.to_string().as_bytes()).await;
        prop_assert_eq!(response.status(), StatusCode::OK);
    }
    app.wait_applied().await;
    let force = DeprovisionGuard {
        force: true,
        ..GUARD
    };
    let listed = broker.listing();
    pull(app, &ws, &broker.dir.id, &listed, timestamp::now(), force);

    let expected = Seen {
        active: broker
            .active()
            .map(|u| {
                let user = &broker.users[u];
                let role = ROLES
                    .iter()
                    .filter(|(g, _)| broker.memberships.contains(&(*g, u)))
                    .map(|(_, role)| role.to_string())
                    .max_by_key(|role| rank(role))
                    .unwrap_or_else(|| default_role.clone());
                (user.email.clone(), user.id.clone(), role)
            })
            .collect(),
        groups: (0..GROUPS)
            .filter(|g| !broker.groups_deleted[*g])
            .map(|g| broker.group_id(g))
            .collect(),
        teams: teams
            .keys()
            .map(|group| {
                let members = broker
                    .active()
                    .filter(|u| broker.memberships.contains(&(*group, *u)))
                    .map(|u| broker.users[u].email.clone())
                    .collect();
                (*group, members)
            })
            .collect(),
    };
    let (status, groups) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-groups?limit=100"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut seen_teams = BTreeMap::new();
    for (group, team) in &teams {
        let roster = team_roster(app, &ws, team).await;
        let active = roster
            .into_iter()
            .filter(|(_, status)| status == "active")
            .map(|(email, _)| email)
            .collect();
        seen_teams.insert(*group, active);
    }
    let seen = Seen {
        active: app
            .members(&ws)
            .await
            .iter()
            .filter(|m| m["status"] == "active")
            .map(|m| {
                let field = |f: &str| m[f].as_str().unwrap_or_default().to_string();
                (field("email"), field("directory_user_id"), field("role"))
            })
            .collect(),
        groups: groups["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect(),
        teams: seen_teams,
    };
    prop_assert_eq!(seen, expected);
    // The change feed, read from the start through all of it, rebuilds what the API lists.
    crate::changes::assert_feed_rebuilds(app, &ws).await;
    Ok(())
}

fn converges(backend: Backend) {
    crate::helpers::check_property(backend, 128, scenario(), |app, scenario| {
        Box::pin(check(app, scenario))
    });
}

#[test]
fn webhooks_then_one_pull_equal_the_broker_sqlite() {
    converges(Backend::Sqlite)
}

#[test]
fn webhooks_then_one_pull_equal_the_broker_postgres() {
    converges(Backend::Postgres)
}
