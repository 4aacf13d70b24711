//! Resyncs through the API, and pulls that fail: a listing failing part-way deletes nothing, one instance
//! pulls a directory at a time.

use super::*;

async fn operators_resync_a_directory_through_the_api(backend: crate::helpers::Backend) {
    let broker = broker(30, None, Faults::default()).await;
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.workos_api_key = Some(broker.api_key.clone().into());
        s.workos_api_base = broker.base_url.clone();
    })
    .await;
    let ws = attach(&app, &broker).await;
    let run = resync(&app, &broker.directory_id, false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "on_demand");
    assert_eq!(run["counts"]["users_created"], 30);
    assert!(run["progress"]["requests"].as_i64().unwrap() >= 2);
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert_eq!(members, truth);
    let (_, sync) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-sync"),
            None,
        )
        .await;
    assert!(
        sync["directories"][0]["last_synced_at"].is_string(),
        "{sync}"
    );
    // The directory shows its members and its latest pull, for the Directory Sync screen.
    assert_eq!(
        sync["directories"][0]["member_count"],
        members.len(),
        "{sync}"
    );
    assert_eq!(
        sync["directories"][0]["last_full_pull"]["run_id"],
        run["id"]
    );
    assert_eq!(
        sync["directories"][0]["last_full_pull"]["status"],
        "succeeded"
    );
    // A listing that keeps failing ends the run failed, and changes nothing.
    broker
        .set_faults(&rollcall::dev_broker::FaultsUpdate {
            rate_500: Some(1.0),
            ..Default::default()
        })
        .expect("valid faults");
    let audit_before = crate::helpers::audit_entries(&app.db);
    let failed = resync(&app, &broker.directory_id, false).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("listing"),
        "{failed}"
    );
    assert_eq!(crate::helpers::audit_entries(&app.db), audit_before);
    assert_eq!(active_members_and_truth(&app, &ws, &broker).await.0, truth);
    let (status, body) = app
        .op(
            Method::POST,
            "/api/v1/directories/directory_unknown/resync",
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (reqwest::StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = app
        .op(Method::GET, "/api/v1/sync-runs/run_unknown", None)
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_resync_a_directory_through_the_api_sqlite() {
    operators_resync_a_directory_through_the_api(crate::helpers::Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_resync_a_directory_through_the_api_postgres() {
    operators_resync_a_directory_through_the_api(crate::helpers::Backend::Postgres).await
}

async fn resync_needs_a_broker_api_key(app: TestApp) {
    let (status, body) = app
        .op(Method::POST, "/api/v1/directories/directory_x/resync", None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (reqwest::StatusCode::CONFLICT, Some("broker_not_configured"))
    );
}

mod without_a_key {
    use super::*;
    crate::on_both_backends!(resync_needs_a_broker_api_key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_never_pull_the_same_directory_at_once() {
    // 4 user listings a second keep each run busy for a few seconds: long enough to overlap.
    let broker = broker(250, None, Faults::default()).await;
    let point_at_broker = |s: &mut rollcall::config::Settings| {
        s.workos_api_key = Some(broker.api_key.clone().into());
        s.workos_api_base = broker.base_url.clone();
    };
    let first =
        crate::helpers::spawn_app_with(crate::helpers::Backend::Postgres, point_at_broker).await;
    let second = crate::helpers::spawn_app_on(first.db.target().clone(), point_at_broker).await;
    attach(&first, &broker).await;
    let (a, b) = tokio::join!(
        resync(&first, &broker.directory_id, false),
        resync(&second, &broker.directory_id, false)
    );
    let mut statuses = [
        a["status"].as_str().unwrap().to_string(),
        b["status"].as_str().unwrap().to_string(),
    ];
    statuses.sort();
    assert_eq!(statuses, ["failed", "succeeded"], "{a}\n{b}");
    let failed = if a["status"] == "failed" { &a } else { &b };
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("another Rollcall instance"),
        "{failed}"
    );
    // The lock goes with the run, not with the pooled connection it was taken on: each instance can pull
    // the directory again, one after the other.
    for app in [&first, &second, &first] {
        let run = resync(app, &broker.directory_id, false).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
}

async fn a_listing_that_fails_on_page_7_deletes_nothing(backend: crate::helpers::Backend) {
    // 800 users: 8 pages of 100 in the user listing.
    let broker = broker(800, None, Faults::default()).await;
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
    assert_eq!(first["counts"]["users_created"], 800, "{first}");
    assert!(
        proxy
            .state
            .deepest
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 8
    );

    // A team follows a directory group.
    let truth = broker.truth();
    let group = truth.groups[0].id.clone();
    let team = team_following(&app, &ws, "Followers", std::slice::from_ref(&group)).await;

    // At the broker, with no webhook to tell Rollcall: users on the first pages are deactivated, users on
    // the first and the last pages deleted, and members leave the team's group.
    let active: Vec<&rollcall::dev_broker::DirectoryUserObject> = truth
        .users
        .iter()
        .filter(|u| u.state == "active" && u.email.is_some())
        .collect();
    let in_group = |u: &str| truth.memberships.contains(&(group.clone(), u.to_string()));
    let position = |u: &str| truth.users.iter().position(|x| x.id == u).unwrap();
    let leaving: Vec<String> = active
        .iter()
        .filter(|u| in_group(&u.id) && position(&u.id) < 600)
        .take(4)
        .map(|u| u.id.clone())
        .collect();
    let rest: Vec<&&rollcall::dev_broker::DirectoryUserObject> =
        active.iter().filter(|u| !leaving.contains(&u.id)).collect();
    let deactivated: Vec<String> = rest
        .iter()
        .filter(|u| position(&u.id) < 600)
        .step_by(97)
        .take(5)
        .map(|u| u.id.clone())
        .collect();
    let deleted: Vec<String> = rest
        .iter()
        .filter(|u| position(&u.id) < 300 || position(&u.id) >= 700)
        .filter(|u| !deactivated.contains(&u.id))
        .step_by(61)
        .take(6)
        .map(|u| u.id.clone())
        .collect();
    assert_eq!((leaving.len(), deactivated.len(), deleted.len()), (4, 5, 6));
    assert!(deleted.iter().any(|u| position(u) >= 700));
    for user in &leaving {
        broker.remove_from_group(&group, user).expect("removed");
    }
    for user in &deactivated {
        broker.deactivate_user(user).expect("deactivated");
    }
    for user in &deleted {
        broker.delete_user(user).expect("deleted");
    }
    let gone_emails: BTreeSet<String> = truth
        .users
        .iter()
        .filter(|u| deactivated.contains(&u.id) || deleted.contains(&u.id))
        .map(|u| u.email.clone().unwrap().to_lowercase())
        .collect();
    let leaving_emails: BTreeSet<String> = truth
        .users
        .iter()
        .filter(|u| leaving.contains(&u.id))
        .map(|u| u.email.clone().unwrap().to_lowercase())
        .collect();

    let members_before = member_states(&app, &ws).await;
    let memberships_before = memberships_of(&app, &broker.directory_id);
    let roster_before = team_roster(&app, &ws, &team).await;
    assert!(leaving_emails
        .iter()
        .all(|e| roster_before.contains(&(e.clone(), "active".into()))));
    assert!(gone_emails.iter().all(|e| members_before
        .values()
        .any(|m| m == &(e.clone(), "active".to_string()))));

    // Page 7 of the user listing fails, retries included: the run fails and deletes nothing.
    proxy.fail_page(7);
    let failed = resync(&app, &broker.directory_id, false).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("listing") && error.contains("incomplete"),
        "{failed}"
    );
    assert!(error.contains("/directory_users"), "{failed}");
    let asked = proxy.state.failed.load(std::sync::atomic::Ordering::SeqCst);
    assert!(asked >= 2, "page 7 was asked for {asked} time(s): retried");
    assert_eq!(
        proxy
            .state
            .deepest
            .load(std::sync::atomic::Ordering::SeqCst),
        7,
        "the listing stopped at page 7"
    );
    assert_eq!(failed["progress"]["users_listed"], 600, "{failed}");

    let members_after = member_states(&app, &ws).await;
    for (id, before) in &members_before {
        assert_eq!(members_after.get(id), Some(before), "member {id}");
    }
    let memberships_after = memberships_of(&app, &broker.directory_id);
    let removed: Vec<_> = memberships_before.difference(&memberships_after).collect();
    assert!(removed.is_empty(), "memberships removed: {removed:?}");
    let roster_after = team_roster(&app, &ws, &team).await;
    assert!(
        roster_before.is_subset(&roster_after),
        "left the team: {:?}",
        roster_before.difference(&roster_after).collect::<Vec<_>>()
    );
    let run_id = failed["id"].as_str().unwrap();
    let destructive: Vec<serde_json::Value> = audit_log(&app, &ws)
        .await
        .into_iter()
        .filter(|e| e["cause"]["type"] == "sync_run" && e["cause"]["id"] == run_id)
        .filter(|e| {
            let action = e["action"].as_str().unwrap_or_default();
            action.ends_with("deprovisioned")
                || action.ends_with("removed")
                || action.ends_with("deleted")
                || (action == "member.updated" && e["after"]["status"] == "deprovisioned")
        })
        .collect();
    assert_eq!(destructive, Vec::<serde_json::Value>::new());

    // Once the broker answers again, the next run applies the removals.
    proxy.fail_page(0);
    let run = resync(&app, &broker.directory_id, false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["deprovisioned"], 11, "{run}");
    assert_eq!(run["counts"]["users_deleted"], 6, "{run}");
    let members = member_states(&app, &ws).await;
    for email in &gone_emails {
        assert!(
            members
                .values()
                .any(|m| m == &(email.clone(), "deprovisioned".to_string())),
            "{email} is deprovisioned"
        );
    }
    let (active_members, truth_members) = active_members_and_truth(&app, &ws, &broker).await;
    assert_eq!(active_members, truth_members);
    let truth = broker.truth();
    assert_eq!(
        memberships_of(&app, &broker.directory_id),
        truth.memberships
    );
    let expected_roster: BTreeSet<(String, String)> = truth
        .users
        .iter()
        .filter(|u| u.state == "active")
        .filter(|u| truth.memberships.contains(&(group.clone(), u.id.clone())))
        .filter_map(|u| Some((u.email.clone()?.to_lowercase(), "active".to_string())))
        .collect();
    let roster = team_roster(&app, &ws, &team).await;
    assert_eq!(roster, expected_roster);
    assert!(leaving_emails
        .iter()
        .all(|e| !roster.iter().any(|(r, _)| r == e)));
    let run_id = run["id"].as_str().unwrap();
    let deprovisions = audit_log(&app, &ws)
        .await
        .into_iter()
        .filter(|e| e["cause"]["type"] == "sync_run" && e["cause"]["id"] == run_id)
        .filter(|e| e["action"] == "member.deprovisioned")
        .count();
    assert_eq!(deprovisions, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_fails_on_page_7_deletes_nothing_sqlite() {
    a_listing_that_fails_on_page_7_deletes_nothing(crate::helpers::Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_fails_on_page_7_deletes_nothing_postgres() {
    a_listing_that_fails_on_page_7_deletes_nothing(crate::helpers::Backend::Postgres).await
}
