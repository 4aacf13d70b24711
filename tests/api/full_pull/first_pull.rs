//! A first pull brings a directory in, and one pull repairs what lost webhooks left behind.

use super::*;

async fn a_first_pull_brings_the_broker_directory_in(app: TestApp) {
    let broker = broker(60, None, Faults::default()).await;
    let ws = attach(&app, &broker).await;
    let listed = listing(&broker).await;
    let counts = pull(
        &app,
        &ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        GUARD,
    );
    assert_eq!(counts.users_created, 60);
    assert_eq!(counts.groups_created, 8);
    assert_eq!(counts.memberships_added, listed.memberships.len());
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert!(!members.is_empty());
    assert_eq!(members, truth);
    assert_eq!(
        memberships_of(&app, &broker.directory_id),
        broker.truth().memberships
    );
    let (_, groups) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-groups"),
            None,
        )
        .await;
    assert_eq!(groups["data"].as_array().unwrap().len(), 8);
    // A second pull with nothing changed changes nothing.
    let again = pull(
        &app,
        &ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        GUARD,
    );
    assert_eq!(
        (
            again.users_created,
            again.users_updated,
            again.memberships_added,
            again.users_deleted
        ),
        (0, 0, 0, 0)
    );
}

async fn lossy_webhooks_then_one_pull_match_the_broker(app: TestApp) {
    let (broker, ws) = lossy_broker_pulled_once(&app, 40).await;
    broker.random_changes(60);
    assert!(
        broker.settle(Duration::from_secs(20)).await,
        "the dev broker delivered everything it meant to"
    );
    app.wait_applied().await;
    let sent = broker.event_summary();
    assert!(sent.dropped > 0 && sent.duplicated > 0, "{sent:?}");
    let (before_pull, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert!(
        before_pull != truth
            || memberships_of(&app, &broker.directory_id) != broker.truth().memberships,
        "with a third of the webhooks dropped, Rollcall should have drifted before the pull"
    );
    let force = DeprovisionGuard {
        force: true,
        ..GUARD
    };
    pull_now(&app, &ws, &broker, force).await;
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert_eq!(members, truth);
    assert_eq!(
        memberships_of(&app, &broker.directory_id),
        broker.truth().memberships
    );
    let (_, failed) = app
        .op(Method::GET, "/api/v1/events?status=failed", None)
        .await;
    assert_eq!(failed["data"], json!([]));
}

async fn a_directory_no_webhook_announced_is_found_by_the_pull(backend: crate::helpers::Backend) {
    let broker = broker(12, None, Faults::default()).await;
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.workos_api_key = Some(broker.api_key.clone().into());
        s.workos_api_base = broker.base_url.clone();
    })
    .await;
    let ws = app.synced_workspace("org_dev").await;
    let run = resync(&app, &broker.directory_id, false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (_, sync) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws}/directory-sync"),
            None,
        )
        .await;
    assert_eq!(
        sync["directories"][0]["id"],
        broker.directory_id.as_str(),
        "{sync}"
    );
    let (members, truth) = active_members_and_truth(&app, &ws, &broker).await;
    assert_eq!(members, truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_no_webhook_announced_is_found_by_the_pull_sqlite() {
    a_directory_no_webhook_announced_is_found_by_the_pull(crate::helpers::Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_no_webhook_announced_is_found_by_the_pull_postgres() {
    a_directory_no_webhook_announced_is_found_by_the_pull(crate::helpers::Backend::Postgres).await
}

crate::on_both_backends!(
    a_first_pull_brings_the_broker_directory_in,
    lossy_webhooks_then_one_pull_match_the_broker,
);
