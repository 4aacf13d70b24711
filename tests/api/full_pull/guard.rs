//! The deprovisioning guard (rule 15) holds an empty listing back, and a webhook applied mid-pull wins.

use super::*;

async fn an_empty_listing_of_a_populated_directory_is_held(app: TestApp) {
    let broker = broker(30, None, Faults::default()).await;
    let ws = attach(&app, &broker).await;
    let listed = listing(&broker).await;
    pull(
        &app,
        &ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        GUARD,
    );
    let active_before = app
        .members(&ws)
        .await
        .iter()
        .filter(|m| m["status"] == "active")
        .count();
    assert!(active_before >= 10);
    let empty = UsersWithGroups {
        users: Vec::new(),
        groups: listed.groups.clone(),
        memberships: BTreeSet::new(),
        requests: 0,
        from_user_groups: false,
        unreadable: Vec::new(),
    };
    let held = pull(
        &app,
        &ws,
        &broker.directory_id,
        &empty,
        timestamp::now(),
        GUARD,
    );
    assert_eq!(held.held, active_before);
    assert_eq!((held.deprovisioned, held.users_deleted), (0, 0));
    assert_eq!(
        app.members(&ws)
            .await
            .iter()
            .filter(|m| m["status"] == "active")
            .count(),
        active_before
    );
    let forced = pull(
        &app,
        &ws,
        &broker.directory_id,
        &empty,
        timestamp::now(),
        DeprovisionGuard {
            force: true,
            ..GUARD
        },
    );
    assert_eq!(forced.deprovisioned, active_before);
    assert!(app
        .members(&ws)
        .await
        .iter()
        .all(|m| m["status"] == "deprovisioned"));
}

async fn a_webhook_applied_mid_pull_wins(app: TestApp) {
    let broker = broker(20, None, Faults::default()).await;
    let ws = pulled_once(&app, &broker).await;
    // The pull begins and lists; meanwhile a webhook brings a user the listing does not have.
    let started_at = timestamp::now();
    let listed = listing(&broker).await;
    std::thread::sleep(Duration::from_millis(5));
    let newcomer = json!({"object": "directory_user", "id": "directory_user_midpull", "directory_id": broker.directory_id,
        "organization_id": "org_dev", "idp_id": "midpull", "email": "midpull@example.com", "first_name": "Mid",
        "last_name": "Pull", "state": "active", "created_at": at(0), "updated_at": at(0)});
    app.deliver(&[event("dsync.user.created", newcomer, &at(0))])
        .await;
    let counts = pull(&app, &ws, &broker.directory_id, &listed, started_at, GUARD);
    assert_eq!(counts.users_deleted, 0);
    assert_eq!(
        app.member(&ws, "midpull@example.com").await.unwrap()["status"],
        "active"
    );
    // The next pull, which began after it, removes what the broker does not have.
    let later = pull(
        &app,
        &ws,
        &broker.directory_id,
        &listed,
        timestamp::now(),
        GUARD,
    );
    assert_eq!(later.users_deleted, 1);
    assert_eq!(
        app.member(&ws, "midpull@example.com").await.unwrap()["status"],
        "deprovisioned"
    );
}

crate::on_both_backends!(
    an_empty_listing_of_a_populated_directory_is_held,
    a_webhook_applied_mid_pull_wins,
);
