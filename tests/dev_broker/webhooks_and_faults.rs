//! Injected faults (429s, 500s, the rate limit) and the signed webhooks each change sends, with retries,
//! drops, duplicates, delays and reordering.

use crate::helpers::*;
use crate::receiver::Receiver;
use reqwest::StatusCode;
use rollcall::dev_broker::*;
use rollcall::workos::events::EventPayload;
use serde_json::json;
use std::time::{Duration, Instant};

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
    // A second's window admits 4: the first four pass, and however slowly the six went out, no more than 4
    // were admitted in each second they spanned (within one second: exactly 4, the last two refused).
    let spanned = started.elapsed().as_secs() as usize + 1;
    assert_eq!(statuses[..4], [200, 200, 200, 200], "{statuses:?}");
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!(admitted <= 4 * spanned, "{statuses:?} in {spanned} s");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    // Groups are not limited.
    let (status, _, _) = get(&broker, &format!("/directory_groups?directory={dir}")).await;
    assert_eq!(status, StatusCode::OK);
    // A second later (by the broker's clock), the window admits again.
    broker.advance_clock(Duration::from_secs(1));
    let (status, _, _) = get(&broker, &format!("/directory_users?directory={dir}")).await;
    assert_eq!(status, StatusCode::OK);
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
