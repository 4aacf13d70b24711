//! One writer, one order: admin changes made while the applier works through a stream of webhook events
//! end as some serial order of them would (no lost updates), on both backends, with real concurrency: the
//! senders, the applier thread and the admin requests all run at once.

use crate::broker::{at, event, TestDirectory};
use crate::helpers::{waiting_events, TestApp};
use diesel::prelude::*;
use reqwest::{Method, StatusCode};
use rollcall::db::schema::{audit_log, members, team_links, team_member_sources};
use rollcall::db::DbError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Membership events in the stream.
const EVENTS: usize = 900;
/// Concurrent senders.
const SENDERS: usize = 6;

/// An audit entry's id, action, subject and the team it names.
type Entry = (i64, String, String, Option<String>);

fn audit_entries(app: &TestApp, ws: &str) -> Vec<Entry> {
    let ws = ws.to_string();
    app.db
        .read(|c| {
            audit_log::table
                .filter(audit_log::workspace_id.eq(ws))
                .order(audit_log::id)
                .select((
                    audit_log::id,
                    audit_log::action,
                    audit_log::subject_id,
                    audit_log::after,
                ))
                .load::<(i64, String, String, Option<String>)>(c)
                .map_err(DbError::from)
        })
        .unwrap()
}

async fn admin_writes_racing_membership_events_end_as_a_serial_order(app: TestApp) {
    let dir = TestDirectory::new();
    let ws = app.synced_workspace(&dir.organization_id).await;
    let group_id = format!("directory_group_everyone_{}", dir.tag);
    let group = dir.group(&group_id, "Everyone", &at(1));
    app.deliver(&[
        event("dsync.activated", dir.object(&at(0)), &at(0)),
        event("dsync.group.created", group.clone(), &at(1)),
    ])
    .await;
    let path = |rest: &str| format!("/api/v1/workspaces/{ws}{rest}");
    let (status, team) = app
        .op(
            Method::POST,
            &path("/teams"),
            Some(json!({ "name": "Everyone" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let team_id = team["id"].as_str().unwrap().to_string();
    let (status, body) = app
        .op(
            Method::POST,
            &path(&format!("/teams/{team_id}/directory-groups")),
            Some(json!({ "group_id": group_id })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Hundreds of people join the group, sent from several connections at once.
    let events: Vec<Value> = (0..EVENTS)
        .map(|i| {
            let user = dir.user(
                &format!("directory_user_{i}_{}", dir.tag),
                &format!("idp-{i}"),
                Some(&format!("person{i}@example.com")),
                "Person",
                "active",
                &at(2),
            );
            event(
                "dsync.group.user_added",
                dir.membership(&user, &group),
                &at(3),
            )
        })
        .collect();
    let app = Arc::new(app);
    let queue = Arc::new(std::sync::Mutex::new(
        events.into_iter().rev().collect::<Vec<_>>(),
    ));
    // The last third is held until the admin writes are on their way, so that the stream overlaps them
    // however fast or slow this machine applies the first two thirds.
    let (admin_started, started) = tokio::sync::watch::channel(false);
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (app, queue, mut started) = (app.clone(), queue.clone(), started.clone());
            tokio::spawn(async move {
                loop {
                    if queue.lock().unwrap().len() <= EVENTS / 3 {
                        started.wait_for(|s| *s).await.unwrap();
                    }
                    let Some(next) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let response = app.post_webhook(next.to_string().as_bytes()).await;
                    assert_eq!(response.status(), StatusCode::OK);
                }
            })
        })
        .collect();

    // Once a third has been applied, and while the rest keep arriving and being applied: map the group to
    // a role and unlink it from the team, keeping its members, both at once.
    loop {
        let applied = app.members(&ws).await.len();
        if applied >= EVENTS / 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (mappings_path, link_path) = (
        path("/role-mappings"),
        path(&format!(
            "/teams/{team_id}/directory-groups/{group_id}?members=keep"
        )),
    );
    let mapping = app.op(
        Method::PUT,
        &mappings_path,
        Some(json!([{ "group_id": group_id, "role": "admin" }])),
    );
    let unlink = app.op(Method::DELETE, &link_path, None);
    admin_started.send_replace(true);
    let ((mapped, body), (unlinked, _)) = tokio::join!(mapping, unlink);
    assert_eq!(mapped, StatusCode::OK, "{body}");
    assert_eq!(unlinked, StatusCode::NO_CONTENT);
    for sender in senders {
        sender.await.unwrap();
    }
    app.wait_applied().await;
    assert_eq!(waiting_events(&app.db), 0);

    let entries = audit_entries(&app, &ws);
    let position = |action: &str| {
        entries
            .iter()
            .find(|(_, a, _, _)| a == action)
            .unwrap_or_else(|| panic!("no {action} in the audit log"))
            .0
    };
    let (mapped_at, unlinked_at) = (
        position("role_mapping.created"),
        position("team_link.removed"),
    );
    let provisioned: Vec<i64> = entries
        .iter()
        .filter(|(_, a, _, _)| a == "member.provisioned")
        .map(|(id, ..)| *id)
        .collect();
    assert_eq!(
        provisioned.len(),
        EVENTS,
        "every event provisioned one member"
    );
    // The stream really raced the admin writes: members were provisioned before both and after both.
    let first_admin = mapped_at.min(unlinked_at);
    let last_admin = mapped_at.max(unlinked_at);
    assert!(provisioned.iter().any(|id| *id < first_admin));
    assert!(provisioned.iter().any(|id| *id > last_admin));

    // The mapping holds for everyone in the group, whether they joined before or after it.
    let all = app.members(&ws).await;
    assert_eq!(all.len(), EVENTS);
    let not_admin: Vec<&Value> = all.iter().filter(|m| m["role"] != "admin").collect();
    assert!(not_admin.is_empty(), "lost role updates: {not_admin:?}");

    // The unlink holds: no source through the group is left in the team, nor the link.
    let (team, group) = (team_id.clone(), group_id.clone());
    let (links, sources): (i64, Vec<(String, String)>) = app
        .db
        .read(|c| {
            let links = team_links::table
                .filter(team_links::team_id.eq(&team))
                .count()
                .get_result(c)?;
            let sources = team_member_sources::table
                .filter(team_member_sources::team_id.eq(&team))
                .select((
                    team_member_sources::member_id,
                    team_member_sources::source_type,
                ))
                .load(c)?;
            Ok::<_, DbError>((links, sources))
        })
        .unwrap();
    assert_eq!(links, 0, "the link is gone");
    let through_group: Vec<&(String, String)> = sources
        .iter()
        .filter(|(_, kind)| kind != "manual")
        .collect();
    assert!(
        through_group.is_empty(),
        "sources through {group} left after the unlink: {through_group:?}"
    );

    // And it is the serial order the audit log records: exactly the members who came through the group
    // before the unlink kept a manual source; those who joined after it are not in the team.
    let mut joined_through_group: HashMap<String, i64> = HashMap::new();
    for (id, action, subject, after) in &entries {
        if action == "team_member.source_added"
            && after.as_deref().is_some_and(|a| a.contains(&group_id))
        {
            joined_through_group.insert(subject.clone(), *id);
        }
    }
    let kept: Vec<&String> = sources.iter().map(|(member, _)| member).collect();
    let ids: Vec<String> = app
        .db
        .read(|c| {
            members::table
                .filter(members::workspace_id.eq(&ws))
                .select(members::id)
                .load(c)
                .map_err(DbError::from)
        })
        .unwrap();
    for member in &ids {
        let before_unlink = joined_through_group
            .get(member)
            .is_some_and(|id| *id < unlinked_at);
        assert_eq!(
            kept.contains(&member),
            before_unlink,
            "member {member}: in the team after the unlink only if they came through the group before it"
        );
    }
    assert!(
        joined_through_group.values().all(|id| *id < unlinked_at),
        "nobody joins the team through the group after the unlink"
    );
}

crate::on_both_backends!(admin_writes_racing_membership_events_end_as_a_serial_order);
