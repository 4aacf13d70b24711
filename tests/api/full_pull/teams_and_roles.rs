//! Teams and roles after pulls: what linked groups and role mappings derive, after lossy webhooks and
//! after a failed pull.

use super::*;

/// Teams an admin made, each with the directory groups linked to it, and the role mappings put.
struct TeamsAndRoles {
    teams: Vec<(String, Vec<String>)>,
    mappings: Vec<(String, &'static str)>,
}

/// The rank of a role: `owner` > `admin` > `builder` > `viewer`.
fn rank(role: &str) -> u8 {
    match role {
        "owner" => 4,
        "admin" => 3,
        "builder" => 2,
        "viewer" => 1,
        other => panic!("unknown role {other}"),
    }
}

/// A workspace's state as rules 1, 3, 8, 10 and 11 derive it: the role of each active member by email, and
/// `(team, email, group)` for each linked group that puts a member in a team.
type DerivedState = (BTreeMap<String, String>, BTreeSet<(String, String, String)>);

/// What Rollcall must hold once it is in step with `truth`: every active user with an email is an active
/// member with the highest mapped role among its groups (else `default_role`), and is in each team through
/// each of the team's linked groups it belongs to. A deleted group's link and mapping are gone (rule 10).
fn expected_from_truth(
    truth: &DirectoryTruth,
    setup: &TeamsAndRoles,
    default_role: &str,
    owners: &BTreeSet<String>,
) -> DerivedState {
    let live_groups: BTreeSet<&str> = truth.groups.iter().map(|g| g.id.as_str()).collect();
    let mut groups_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (group, user) in &truth.memberships {
        groups_of.entry(user).or_default().insert(group);
    }
    let mut roles = BTreeMap::new();
    let mut placements = BTreeSet::new();
    for user in truth.users.iter().filter(|u| u.state == "active") {
        let Some(email) = user.email.as_deref().map(str::to_lowercase) else {
            continue;
        };
        let empty = BTreeSet::new();
        let groups = groups_of.get(user.id.as_str()).unwrap_or(&empty);
        let role = setup
            .mappings
            .iter()
            .filter(|(group, _)| live_groups.contains(group.as_str()))
            .filter(|(group, _)| groups.contains(group.as_str()))
            .map(|(_, role)| *role)
            .max_by_key(|role| rank(role))
            .unwrap_or(default_role);
        let role = if owners.contains(&email) {
            "owner"
        } else {
            role
        };
        for (team, linked) in &setup.teams {
            for group in linked.iter().filter(|g| groups.contains(g.as_str())) {
                placements.insert((team.clone(), email.clone(), group.clone()));
            }
        }
        roles.insert(email, role.to_string());
    }
    (roles, placements)
}

/// What Rollcall holds, read through the API: the role of each active member by email, and every team
/// member's sources as `(team, email, group)` (`"manual"` for a manual source).
async fn actual_state(app: &TestApp, ws: &str, setup: &TeamsAndRoles) -> DerivedState {
    let roles = app
        .members(ws)
        .await
        .iter()
        .filter(|m| m["status"] == "active")
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_lowercase(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut placements = BTreeSet::new();
    for (team, _) in &setup.teams {
        let (status, body) = app
            .op(
                Method::GET,
                &format!("/api/v1/workspaces/{ws}/teams/{team}/members?limit=1000"),
                None,
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        assert!(body["list_metadata"]["after"].is_null(), "one page: {body}");
        for member in body["data"].as_array().unwrap() {
            let email = member["email"].as_str().unwrap().to_lowercase();
            for source in member["sources"].as_array().unwrap() {
                let why = match source["type"].as_str() {
                    Some("directory_group") => source["group_id"].as_str().unwrap().to_string(),
                    _ => "manual".to_string(),
                };
                placements.insert((team.clone(), email.clone(), why));
            }
        }
    }
    (roles, placements)
}

/// The emails of members whose role is `owner`: the directory leaves them as they are.
async fn owners(app: &TestApp, ws: &str) -> BTreeSet<String> {
    app.members(ws)
        .await
        .iter()
        .filter(|m| m["role"] == "owner")
        .map(|m| m["email"].as_str().unwrap().to_lowercase())
        .collect()
}

async fn default_role(app: &TestApp, ws: &str) -> String {
    let (status, body) = app
        .op(Method::GET, &format!("/api/v1/workspaces/{ws}"), None)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    body["default_role"].as_str().unwrap().to_string()
}

/// An active user with an email in every group of `within` and in none of `outside`, other than `taken`.
fn pick_user(
    truth: &DirectoryTruth,
    within: &[&str],
    outside: &[&str],
    state: &str,
    taken: &[String],
) -> String {
    let in_group = |group: &str, user: &str| {
        truth
            .memberships
            .contains(&(group.to_string(), user.to_string()))
    };
    truth
        .users
        .iter()
        .filter(|u| u.state == state && u.email.is_some() && !taken.contains(&u.id))
        .find(|u| {
            within.iter().all(|g| in_group(g, &u.id)) && !outside.iter().any(|g| in_group(g, &u.id))
        })
        .unwrap_or_else(|| panic!("no {state} user in {within:?} and outside {outside:?}"))
        .id
        .clone()
}

async fn lossy_webhooks_then_one_pull_match_teams_and_roles(app: TestApp) {
    let (broker, ws) = lossy_broker_pulled_once(&app, 60).await;

    // An admin sets up teams linked to directory groups, and maps groups to roles.
    let truth = broker.truth();
    let g: Vec<String> = truth.groups.iter().map(|g| g.id.clone()).collect();
    let mut setup = TeamsAndRoles {
        teams: Vec::new(),
        mappings: vec![(g[0].clone(), "admin"), (g[1].clone(), "builder")],
    };
    for (name, linked) in [
        ("Platform", vec![g[0].clone()]),
        ("Product", vec![g[1].clone(), g[2].clone()]),
        ("Support", vec![g[3].clone()]),
    ] {
        let team = team_following(&app, &ws, name, &linked).await;
        setup.teams.push((team, linked));
    }
    map_roles(&app, &ws, &setup.mappings).await;
    let default_role = default_role(&app, &ws).await;
    assert_eq!(default_role, "viewer");
    let owners = owners(&app, &ws).await;
    let expected = expected_from_truth(&truth, &setup, &default_role, &owners);
    assert_eq!(
        actual_state(&app, &ws, &setup).await,
        expected,
        "links and mappings put every member in place"
    );
    assert!(
        expected.1.len() >= 20,
        "the teams are populated: {expected:?}"
    );
    assert!(
        expected.0.values().any(|r| r == "admin") && expected.0.values().any(|r| r == "builder"),
        "{expected:?}"
    );

    // Changes to linked and mapped groups whose webhooks are all lost: only the pull can repair them.
    broker
        .set_faults(&rollcall::dev_broker::FaultsUpdate {
            drop: Some(1.0),
            ..Default::default()
        })
        .expect("valid faults");
    let (g0, g1, g2, g3) = (g[0].as_str(), g[1].as_str(), g[2].as_str(), g[3].as_str());
    let mut hidden = Vec::new();
    // An admin of Platform moves to a group that makes them a builder in Product.
    hidden.push(pick_user(&truth, &[g0], &[g1, g2, g3], "active", &hidden));
    broker.move_user(&hidden[0], g0, g1).expect("moved");
    // Someone leaves Support.
    hidden.push(pick_user(&truth, &[g3], &[g0, g1, g2], "active", &hidden));
    broker.remove_from_group(g3, &hidden[1]).expect("removed");
    // Someone in no linked group joins one linked to Product.
    hidden.push(pick_user(&truth, &[], &[g0, g1, g2, g3], "active", &hidden));
    broker.add_to_group(g2, &hidden[2]).expect("added");
    // A builder is deactivated.
    hidden.push(pick_user(&truth, &[g1], &[g0], "active", &hidden));
    broker.deactivate_user(&hidden[3]).expect("deactivated");
    assert!(
        broker.settle(Duration::from_secs(20)).await,
        "the lost events are settled"
    );
    broker
        .set_faults(&rollcall::dev_broker::FaultsUpdate {
            drop: Some(0.3),
            ..Default::default()
        })
        .expect("valid faults");
    let lost = broker.event_summary();
    assert!(lost.dropped >= 5, "{lost:?}");

    // Then a lossy stretch: dropped, duplicated and reordered deliveries.
    broker.random_changes(60);
    assert!(
        broker.settle(Duration::from_secs(20)).await,
        "the dev broker delivered everything it meant to"
    );
    app.wait_applied().await;
    let sent = broker.event_summary();
    assert!(
        sent.dropped > lost.dropped && sent.duplicated > 0,
        "{sent:?}"
    );
    let truth = broker.truth();
    let expected = expected_from_truth(&truth, &setup, &default_role, &owners);
    let before_pull = actual_state(&app, &ws, &setup).await;
    assert_ne!(
        before_pull.0, expected.0,
        "with the lost events, members or roles should have drifted before the pull"
    );
    assert_ne!(
        before_pull.1, expected.1,
        "with the lost events, teams should have drifted before the pull"
    );

    // One full pull brings members, teams and roles back in line with the broker.
    let force = DeprovisionGuard {
        force: true,
        ..GUARD
    };
    pull_now(&app, &ws, &broker, force).await;
    let (members, truth_members) = active_members_and_truth(&app, &ws, &broker).await;
    assert_eq!(members, truth_members);
    let (roles, placements) = actual_state(&app, &ws, &setup).await;
    assert_eq!(roles, expected.0, "active members and their roles");
    let teams = |p: &BTreeSet<(String, String, String)>| -> BTreeSet<(String, String)> {
        p.iter().map(|(t, e, _)| (t.clone(), e.clone())).collect()
    };
    assert_eq!(teams(&placements), teams(&expected.1), "team memberships");
    assert_eq!(placements, expected.1, "team membership sources");
    // Links of deleted groups are gone; the others remain.
    let live: BTreeSet<&str> = truth.groups.iter().map(|g| g.id.as_str()).collect();
    for (team, linked) in &setup.teams {
        let (status, body) = app
            .op(
                Method::GET,
                &format!("/api/v1/workspaces/{ws}/teams/{team}"),
                None,
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        let mut still: Vec<&str> = linked
            .iter()
            .map(String::as_str)
            .filter(|g| live.contains(g))
            .collect();
        still.sort();
        assert_eq!(body["linked_group_ids"], json!(still), "{body}");
    }
    let (_, failed) = app
        .op(Method::GET, "/api/v1/events?status=failed", None)
        .await;
    assert_eq!(failed["data"], json!([]));
}

/// A pull that fails after adding memberships still brings those users' teams and roles in line; and a
/// pull repairs a team source lost behind Rollcall's back.
async fn teams_and_roles_follow_a_failed_pull_and_are_repaired_by_the_next(
    backend: crate::helpers::Backend,
) {
    let broker = broker(40, None, Faults::default()).await;
    let proxy = FailingPage::start(&broker.base_url).await;
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.workos_api_key = Some(broker.api_key.clone().into());
        s.workos_api_base = proxy.base_url.clone();
        s.user_listing_rate = 0.0;
    })
    .await;
    let ws = attach(&app, &broker).await;
    let first = resync(&app, &broker.directory_id, false).await;
    assert_eq!(first["status"], "succeeded", "{first}");

    // The first listed group feeds a team and the admin role.
    let truth = broker.truth();
    let (group, last_group) = (
        truth.groups.first().unwrap().id.clone(),
        truth.groups.last().unwrap().id.clone(),
    );
    let team = team_following(&app, &ws, "Admins", std::slice::from_ref(&group)).await;
    map_roles(&app, &ws, &[(group.clone(), "admin")]).await;

    // At the broker, with no webhook: an active user outside the group joins it. The next pull lists that
    // group's members, then fails on the last group's.
    let newcomer = truth
        .users
        .iter()
        .find(|u| {
            u.state == "active"
                && u.email.is_some()
                && !truth.memberships.contains(&(group.clone(), u.id.clone()))
        })
        .expect("an active user outside the group");
    let email = newcomer.email.clone().unwrap().to_lowercase();
    let added = reqwest::Client::new()
        .post(format!("{}/_dev/groups/{group}/members", broker.base_url))
        .json(&json!({ "user_id": newcomer.id }))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    let member = app
        .member(&ws, &email)
        .await
        .expect("the newcomer's member");
    assert_ne!(member["role"], "admin", "{member}");
    assert!(!team_roster(&app, &ws, &team)
        .await
        .iter()
        .any(|(e, _)| *e == email));

    proxy.fail_group(Some(&last_group));
    let failed = resync(&app, &broker.directory_id, false).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let member = app.member(&ws, &email).await.unwrap();
    assert_eq!(member["role"], "admin", "{member}");
    assert!(
        team_roster(&app, &ws, &team)
            .await
            .iter()
            .any(|(e, _)| *e == email),
        "the newcomer is in the group's team after the failed pull"
    );

    // A source lost behind Rollcall's back (the membership stays recorded) comes back with the next pull.
    let member_id = member["id"].as_str().unwrap().to_string();
    app.db
        .write(|c| {
            use rollcall::db::schema::team_member_sources as sources;
            diesel::delete(sources::table.filter(sources::member_id.eq(&member_id)))
                .execute(c)
                .map_err(DbError::from)
        })
        .unwrap();
    assert!(!team_roster(&app, &ws, &team)
        .await
        .iter()
        .any(|(e, _)| *e == email));
    proxy.fail_group(None);
    let repaired = resync(&app, &broker.directory_id, false).await;
    assert_eq!(repaired["status"], "succeeded", "{repaired}");
    assert!(
        team_roster(&app, &ws, &team)
            .await
            .iter()
            .any(|(e, _)| *e == email),
        "the next pull restores the team source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_and_roles_follow_a_failed_pull_and_are_repaired_by_the_next_sqlite() {
    teams_and_roles_follow_a_failed_pull_and_are_repaired_by_the_next(
        crate::helpers::Backend::Sqlite,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_and_roles_follow_a_failed_pull_and_are_repaired_by_the_next_postgres() {
    teams_and_roles_follow_a_failed_pull_and_are_repaired_by_the_next(
        crate::helpers::Backend::Postgres,
    )
    .await
}

crate::on_both_backends!(lossy_webhooks_then_one_pull_match_teams_and_roles);
