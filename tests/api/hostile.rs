//! Rules 19–22: what the broker, an identity provider or a client sends never moves a directory to
//! another workspace, never fails on text a database cannot store, never takes a member over through a
//! look-alike email, and never makes or unmakes an owner by hand.

use crate::broker::{at, event, TestDirectory};
use crate::helpers::{spawn_app, Backend, TestApp};
use reqwest::{Method, StatusCode};
use rollcall::metrics::sample_value;
use serde_json::{json, Value};
use std::collections::BTreeSet;

crate::on_both_backends!(
    backend:
    an_event_naming_another_organization_is_skipped_and_moves_nothing,
    a_look_alike_email_never_takes_a_member_over,
    only_the_operator_makes_or_unmakes_an_owner_and_the_last_one_stays,
    a_nul_in_a_name_never_stops_a_deprovisioning,
    a_pull_reads_hostile_pages_record_by_record,
    a_deleted_user_leaves_its_groups,
    a_tail_that_reads_nothing_while_webhooks_bring_newer_events_says_so,
);

/// A workspace with directory sync on and `dir` activated; returns the workspace's id.
async fn activated(app: &TestApp, dir: &TestDirectory) -> String {
    let ws = app.synced_workspace(&dir.organization_id).await;
    app.deliver(&[event("dsync.activated", dir.object(&at(0)), &at(0))])
        .await;
    ws
}

/// The stored delivery of this event: its status and reason.
async fn outcome(app: &TestApp, event: &Value) -> (String, String) {
    let id = event["id"].as_str().unwrap();
    let deliveries = app.deliveries(id).await;
    let delivery = deliveries.first().expect("the event was stored");
    (
        delivery["status"].as_str().unwrap().to_string(),
        delivery["reason"].as_str().unwrap_or_default().to_string(),
    )
}

/// A signed event for workspace A's directory that names workspace B's organization creates nothing in
/// B (nor in A), and a `dsync.activated` naming B's organization leaves the directory with A: both are
/// skipped as `organization_mismatch`, and counted.
async fn an_event_naming_another_organization_is_skipped_and_moves_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let a = TestDirectory::new();
    let b = TestDirectory::new();
    let ws_a = activated(&app, &a).await;
    let ws_b = activated(&app, &b).await;

    let mut user = a.user(
        "directory_user_crossing",
        "idp-crossing",
        Some(&format!("crossing-{}@example.com", a.tag.to_lowercase())),
        "Crossing",
        "active",
        &at(1),
    );
    user["organization_id"] = json!(b.organization_id);
    let created = event("dsync.user.created", user, &at(1));
    let mut moved = a.object(&at(2));
    moved["organization_id"] = json!(b.organization_id);
    let activation = event("dsync.activated", moved, &at(2));
    app.deliver(&[created.clone(), activation.clone()]).await;

    for sent in [&created, &activation] {
        let (status, reason) = outcome(&app, sent).await;
        assert_eq!(status, "skipped", "{sent}");
        assert!(reason.starts_with("organization_mismatch"), "{reason}");
        assert!(reason.contains(&b.organization_id), "{reason}");
    }
    assert!(app.members(&ws_a).await.is_empty());
    assert!(app.members(&ws_b).await.is_empty());
    let (status, body) = app
        .op(
            Method::GET,
            &format!("/api/v1/workspaces/{ws_a}/directory-sync"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["directories"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, [a.id.as_str()], "the directory stays with A");
    let scrape = app.scrape().await;
    let skipped = sample_value(
        &scrape,
        "rollcall_events_skipped_total{reason=\"organization_mismatch\"}",
    );
    assert_eq!(skipped, Some(2.0), "{scrape}");

    // The same user, naming A's organization (or none), is applied to A.
    let user = a.user(
        "directory_user_crossing",
        "idp-crossing",
        Some(&format!("crossing-{}@example.com", a.tag.to_lowercase())),
        "Crossing",
        "active",
        &at(3),
    );
    app.deliver(&[event("dsync.user.updated", user, &at(3))])
        .await;
    assert_eq!(app.members(&ws_a).await.len(), 1);
    assert!(app.members(&ws_b).await.is_empty());
}

/// Adds a member by hand with the operator's token; returns its id.
async fn add_member(app: &TestApp, ws: &str, email: &str, role: &str) -> String {
    let (status, body) = app
        .op(
            Method::POST,
            &format!("/api/v1/workspaces/{ws}/members"),
            Some(json!({ "email": email, "role": role })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// A directory user `K…` spelled with U+212A KELVIN SIGN is not the manual owner `kate@…`: it gets a
/// member of its own and the owner stays manual and owner. An ASCII case difference still matches.
async fn a_look_alike_email_never_takes_a_member_over(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = TestDirectory::new();
    let domain = format!("{}.example.com", dir.tag.to_lowercase());
    let ws = app.create_workspace(&dir.organization_id, "growth").await;
    let kate = add_member(&app, &ws, &format!("kate@{domain}"), "owner").await;
    let bob = add_member(&app, &ws, &format!("bob@{domain}"), "viewer").await;
    app.set_sync(&ws, true).await;
    app.deliver(&[event("dsync.activated", dir.object(&at(0)), &at(0))])
        .await;
    let look_alike = format!("\u{212A}ate@{domain}");
    let users = [
        dir.user(
            "directory_user_k",
            "idp-k",
            Some(&look_alike),
            "Kelvin",
            "active",
            &at(1),
        ),
        dir.user(
            "directory_user_b",
            "idp-b",
            Some(&format!("BOB@{}", domain.to_uppercase())),
            "Bob",
            "active",
            &at(1),
        ),
    ];
    let events: Vec<Value> = users
        .into_iter()
        .map(|u| event("dsync.user.created", u, &at(1)))
        .collect();
    app.deliver(&events).await;

    let members = app.members(&ws).await;
    let by_id = |id: &str| members.iter().find(|m| m["id"] == id).unwrap().clone();
    let owner = by_id(&kate);
    assert_eq!(owner["managed_by"], "manual", "{owner}");
    assert_eq!(owner["role"], "owner", "{owner}");
    let adopted = by_id(&bob);
    assert_eq!(
        adopted["managed_by"], "directory",
        "an ASCII case difference matches: {adopted}"
    );
    let kelvin: Vec<&Value> = members
        .iter()
        .filter(|m| m["email"] == look_alike.as_str())
        .collect();
    assert_eq!(kelvin.len(), 1, "{members:?}");
    assert_ne!(kelvin[0]["id"], kate.as_str());
    assert_eq!(kelvin[0]["role"], "viewer");
    assert_eq!(members.len(), 3);
}

/// A step of the owner rule's walk: as an admin (else the operator), the call, and the refusal expected
/// (none: it succeeds).
type OwnerStep = (
    bool,
    Method,
    String,
    Option<Value>,
    Option<(StatusCode, &'static str)>,
);

/// Rule 22 through the API: an admin token never grants, removes or demotes `owner`; the operator does,
/// but never to the workspace's last active owner.
async fn only_the_operator_makes_or_unmakes_an_owner_and_the_last_one_stays(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = TestDirectory::new();
    let ws = app.create_workspace(&dir.organization_id, "growth").await;
    let admin = app.admin_token(&ws).await;
    let domain = format!("{}.example.com", dir.tag.to_lowercase());
    let ann = add_member(&app, &ws, &format!("ann@{domain}"), "owner").await;
    let ben = add_member(&app, &ws, &format!("ben@{domain}"), "admin").await;
    let member = |id: &str| format!("/api/v1/workspaces/{ws}/members/{id}");
    let members = format!("/api/v1/workspaces/{ws}/members");
    let (forbidden, conflict) = (
        Some((StatusCode::FORBIDDEN, "owner_requires_operator")),
        Some((StatusCode::CONFLICT, "last_owner")),
    );
    let role = |role: &str| Some(json!({ "role": role }));
    // Each member says beforehand what its caller may do, in the refusal's words.
    let (_, shown) = app
        .call(Method::GET, &member(&ann), Some(&admin), None)
        .await;
    let refused =
        json!({ "allowed": false, "reason": "only the operator grants or removes the owner role" });
    assert_eq!(
        shown["actions"],
        json!({ "remove": refused, "change_role": refused })
    );
    let (_, shown) = app.op(Method::GET, &member(&ann), None).await;
    let last = json!({ "allowed": false, "reason": format!("ann@{domain} is the workspace's last active owner: make another member owner first") });
    assert_eq!(
        shown["actions"],
        json!({ "remove": last, "change_role": last })
    );
    let (_, shown) = app
        .call(Method::GET, &member(&ben), Some(&admin), None)
        .await;
    let allowed = json!({ "allowed": true, "reason": null });
    assert_eq!(
        shown["actions"],
        json!({ "remove": allowed, "change_role": allowed })
    );
    // Each step: who calls (an admin token, else the operator), what, and the refusal expected (none: 2xx).
    let steps: Vec<OwnerStep> = vec![
        (true, Method::PATCH, member(&ben), role("owner"), forbidden),
        (
            true,
            Method::POST,
            members.clone(),
            Some(json!({ "email": format!("cy@{domain}"), "role": "owner" })),
            forbidden,
        ),
        (true, Method::PATCH, member(&ann), role("admin"), forbidden),
        (true, Method::DELETE, member(&ann), None, forbidden),
        // Other changes of an owner stay the admin's to make.
        (
            true,
            Method::PATCH,
            member(&ann),
            Some(json!({ "first_name": "Ann" })),
            None,
        ),
        // The operator: never the last active owner.
        (false, Method::PATCH, member(&ann), role("admin"), conflict),
        (false, Method::DELETE, member(&ann), None, conflict),
        (false, Method::PATCH, member(&ben), role("owner"), None),
        (false, Method::PATCH, member(&ann), role("viewer"), None),
        (false, Method::DELETE, member(&ben), None, conflict),
    ];
    for (as_admin, method, path, body, refused) in steps {
        let token = if as_admin {
            admin.as_str()
        } else {
            crate::helpers::OPERATOR_TOKEN
        };
        let step = format!(
            "{method} {path} {body:?} as {}",
            if as_admin { "admin" } else { "operator" }
        );
        let (status, answer) = app.call(method, &path, Some(token), body).await;
        match refused {
            Some((expected, code)) => {
                assert_eq!(
                    (status, answer["code"].as_str()),
                    (expected, Some(code)),
                    "{step}: {answer}"
                )
            }
            None => assert!(status.is_success(), "{step}: {answer}"),
        }
    }
    let roles: BTreeSet<(String, String)> = app
        .members(&ws)
        .await
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [(ann, "viewer".to_string()), (ben, "owner".to_string())];
    assert_eq!(
        roles,
        expected.into_iter().collect(),
        "the roles the steps left"
    );
}

/// Rule 21: the `state: inactive` snapshot whose `first_name` holds a NUL deprovisions the member, with
/// the NUL removed from the name.
async fn a_nul_in_a_name_never_stops_a_deprovisioning(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = TestDirectory::new();
    let ws = activated(&app, &dir).await;
    let email = format!("nul-{}@example.com", dir.tag.to_lowercase());
    let user = |first: &str, state: &str, minute: u32| {
        dir.user(
            "directory_user_nul",
            "idp-nul",
            Some(&email),
            first,
            state,
            &at(minute),
        )
    };
    app.deliver(&[event(
        "dsync.user.created",
        user("Ann", "active", 1),
        &at(1),
    )])
    .await;
    let leaving = event(
        "dsync.user.updated",
        user("Ann\u{0}ette", "inactive", 2),
        &at(2),
    );
    app.deliver(std::slice::from_ref(&leaving)).await;
    assert_eq!(outcome(&app, &leaving).await.0, "applied");
    let member = app.member(&ws, &email).await.expect("the member");
    assert_eq!(member["status"], "deprovisioned", "{member}");
    assert_eq!(member["first_name"], "Annette", "{member}");
}

/// A broker whose pages hold what an identity provider can put in them: a NUL in a name, custom
/// attributes nested deeper than any JSON reader's recursion limit, and one record Rollcall cannot read
/// at all. Every request is answered from `pages` by its path.
fn hostile_broker(
    dir: &TestDirectory,
    users: Vec<Value>,
) -> (String, actix_web::dev::ServerHandle) {
    let nested = "[".repeat(400) + &"]".repeat(400);
    let groups = json!({"data": [], "list_metadata": {"after": null}}).to_string();
    let users = users
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(",")
        .replace("\"DEEP\"", &nested);
    let users = format!(r#"{{"data":[{users}],"list_metadata":{{"after":null}}}}"#);
    let directory = dir.id.clone();
    crate::helpers::serve_http(move |request: actix_web::HttpRequest| {
        let body = match request.path() {
            "/directory_groups" => groups.clone(),
            "/directory_users" if request.query_string().contains(&directory) => users.clone(),
            _ => json!({"data": [], "list_metadata": {"after": null}}).to_string(),
        };
        async move {
            actix_web::HttpResponse::Ok()
                .content_type("application/json")
                .body(body)
        }
    })
}

/// A pull of those pages stores the name without its NUL (PostgreSQL refuses NUL in text), applies the
/// user whose custom attributes nest deeply (showing those it can read), and leaves the unreadable record as stored: not updated, not
/// deleted, named in the run's counts.
async fn a_pull_reads_hostile_pages_record_by_record(backend: Backend) {
    let dir = TestDirectory::new();
    let tag = dir.tag.to_lowercase();
    let email = |name: &str| format!("{name}-{tag}@example.com");
    let mut nul = dir.user(
        "directory_user_nul",
        "idp-nul",
        Some(&email("nul")),
        "Zo\u{0}e",
        "active",
        &at(5),
    );
    nul["custom_attributes"] = json!({"manager": "DEEP", "department": {"name": "Ops"}});
    let mut unreadable = dir.user(
        "directory_user_bad",
        "idp-bad",
        Some(&email("bad")),
        "Bad",
        "inactive",
        &at(5),
    );
    unreadable["groups"] = json!("DEEP");
    let plain = dir.user(
        "directory_user_ok",
        "idp-ok",
        Some(&email("ok")),
        "Ok",
        "active",
        &at(5),
    );
    let (base_url, server) = hostile_broker(&dir, vec![nul, unreadable, plain]);
    let app = crate::helpers::spawn_app_with(backend, |s| {
        s.workos_api_key = Some("sk_test_hostile_pages".into());
        s.workos_api_base = base_url;
    })
    .await;
    let ws = activated(&app, &dir).await;
    // The unreadable user was active before the pull.
    let before = dir.user(
        "directory_user_bad",
        "idp-bad",
        Some(&email("bad")),
        "Bad",
        "active",
        &at(1),
    );
    app.deliver(&[event("dsync.user.created", before, &at(1))])
        .await;

    let run = crate::full_pull::resync(&app, &dir.id, false).await;
    server.stop(false).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["records_unreadable"], 1, "{run}");
    let named = run["counts"]["unreadable"][0].as_str().unwrap_or_default();
    assert!(named.starts_with("user directory_user_bad:"), "{run}");
    assert_eq!(run["counts"]["users_deleted"], 0, "{run}");
    let zoe = app.member(&ws, &email("nul")).await.expect("the member");
    assert_eq!(
        (zoe["first_name"].as_str(), zoe["status"].as_str()),
        (Some("Zoe"), Some("active")),
        "{zoe}"
    );
    // The attribute nested too deep to read is left out; the others are shown.
    assert_eq!(
        zoe["attributes"],
        json!({"department": {"name": "Ops"}}),
        "{zoe}"
    );
    assert!(app.member(&ws, &email("ok")).await.is_some());
    let bad = app.member(&ws, &email("bad")).await.expect("the member");
    assert_eq!(bad["status"], "active", "left as stored: {bad}");
}

/// Rule 20: `dsync.user.deleted` (by webhook or the Events API, the same path) takes the user out of its
/// groups' member counts.
async fn a_deleted_user_leaves_its_groups(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = TestDirectory::new();
    let ws = activated(&app, &dir).await;
    let user = dir.user(
        "directory_user_gone",
        "idp-gone",
        Some(&format!("gone-{}@example.com", dir.tag.to_lowercase())),
        "Gone",
        "active",
        &at(1),
    );
    let group = dir.group("directory_group_left", "Left", &at(1));
    app.deliver(&[
        event("dsync.group.created", group.clone(), &at(1)),
        event("dsync.user.created", user.clone(), &at(1)),
        event(
            "dsync.group.user_added",
            dir.membership(&user, &group),
            &at(2),
        ),
    ])
    .await;
    let count = |body: &Value| body["data"][0]["member_count"].as_i64();
    let path = format!("/api/v1/workspaces/{ws}/directory-groups");
    let (_, groups) = app.op(Method::GET, &path, None).await;
    assert_eq!(count(&groups), Some(1), "{groups}");
    let mut deleted = user.clone();
    deleted["updated_at"] = at(3).into();
    app.deliver(&[event("dsync.user.deleted", deleted, &at(3))])
        .await;
    let (_, groups) = app.op(Method::GET, &path, None).await;
    assert_eq!(count(&groups), Some(0), "{groups}");
    // A late membership event from before the deletion does not put them back.
    app.deliver(&[event(
        "dsync.group.user_added",
        dir.membership(&user, &group),
        &at(2),
    )])
    .await;
    let (_, groups) = app.op(Method::GET, &path, None).await;
    assert_eq!(count(&groups), Some(0), "{groups}");
}

/// A tail told to read from a time after which it finds nothing, although webhooks brought events the
/// broker created since and it has polled after they came, says so in its status and in `/readyz`.
async fn a_tail_that_reads_nothing_while_webhooks_bring_newer_events_says_so(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = TestDirectory::new();
    let from = rollcall::workos::timestamp::now();
    rollcall::event_tail::place::restart_from(&app.db, from).unwrap();
    let (_, status) = app.op(Method::GET, "/api/v1/event-tail", None).await;
    assert!(status.get("stalled").is_none(), "{status}");
    let created = rollcall::workos::timestamp::format(from + chrono::TimeDelta::seconds(30));
    activated(&app, &dir).await;
    app.deliver(&[event(
        "dsync.group.created",
        dir.group("directory_group_t", "T", &created),
        &created,
    )])
    .await;
    let polled = rollcall::workos::timestamp::now() + chrono::TimeDelta::seconds(1);
    rollcall::event_tail::place::record_poll(&app.db, polled).unwrap();
    let (_, status) = app.op(Method::GET, "/api/v1/event-tail", None).await;
    let why = status["stalled"].as_str().unwrap_or_default();
    assert!(why.contains("clock"), "{status}");
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["event_tail"].as_str(), Some(why), "{ready}");
    let scrape = app.scrape().await;
    assert_eq!(
        sample_value(&scrape, "rollcall_event_tail_stalled"),
        Some(1.0),
        "{scrape}"
    );
}
