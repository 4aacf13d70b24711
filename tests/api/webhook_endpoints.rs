//! Outbound webhooks (rule 23): a workspace's changes reach its endpoints signed as Standard Webhooks, in
//! feed order; a receiver that fails gets everything once it recovers while another endpoint is not held
//! up; 410 and failing for too long disable an endpoint with the reason; URLs to private addresses are
//! refused unless allowed; an admin manages only its own workspace's endpoints; a service killed with
//! SIGKILL in the middle of a burst sends every change at least once after it starts again.

use crate::helpers::{spawn_app_with, Backend, TestApp};
use crate::teams::Org;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use reqwest::{Method, StatusCode};
use rollcall::outbound::signing::sign;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

crate::on_both_backends!(
    backend: changes_reach_an_endpoint_signed_and_in_order,
    a_failing_receiver_gets_everything_in_order_and_holds_up_no_other,
    gone_and_failing_for_too_long_disable_an_endpoint,
    urls_to_private_addresses_are_refused_unless_allowed,
    an_admin_manages_only_its_own_workspaces_endpoints,
    a_killed_service_loses_no_change_for_its_endpoints,
    the_command_line_registers_lists_disables_and_deletes,
    an_endpoint_behind_retention_is_stopped_not_skipped_ahead,
    batches_carry_changes_in_order_and_a_retry_carries_the_same_ones,
);

/// A delivery as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn position(&self) -> i64 {
        self.json()["data"]["position"].as_i64().unwrap()
    }

    /// The positions of the changes of a `change.batch`.
    fn batch_positions(&self) -> Vec<i64> {
        let message = self.json();
        assert_eq!(message["type"], "change.batch", "{message}");
        message["data"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["position"].as_i64().unwrap())
            .collect()
    }
}

/// A receiver answering every delivery with `status` (changeable), keeping what it got.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Received>>>,
    _server: actix_web::dev::ServerHandle,
}

impl Receiver {
    fn start(status: u16) -> Receiver {
        let status = Arc::new(AtomicU16::new(status));
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let (answer, kept) = (status.clone(), got.clone());
        let (url, server) = crate::helpers::serve_http(move |request: HttpRequest, body: Bytes| {
            let (answer, kept) = (answer.clone(), kept.clone());
            async move {
                let header = |name: &str| crate::helpers::header(&request, name);
                let status = answer.load(Ordering::SeqCst);
                kept.lock().unwrap().push(Received {
                    id: header("webhook-id"),
                    timestamp: header("webhook-timestamp"),
                    signature: header("webhook-signature"),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    answered: status,
                });
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                    .body("receiver says hello")
            }
        });
        Receiver {
            url: format!("{url}/hooks"),
            status,
            got,
            _server: server,
        }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The deliveries it answered 2xx, in the order they came.
    fn accepted(&self) -> Vec<Received> {
        self.got()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    async fn wait_accepted(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let accepted = self.accepted();
            if accepted.len() >= count {
                return accepted;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} deliveries after 30 s: {:?}",
                accepted.len(),
                self.got()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A service that may deliver to loopback, retrying soon.
async fn app(backend: Backend, give_up: Duration) -> TestApp {
    spawn_app_with(backend, |s| {
        s.outbound_allow_private = true;
        s.outbound_first_retry = Duration::from_millis(20);
        s.outbound_give_up = give_up;
    })
    .await
}

async fn register(app: &TestApp, org: &Org, url: &str, body: Value) -> (String, String) {
    let mut body = body;
    body["url"] = json!(url);
    let (status, created) = app
        .op(Method::POST, &org.path("/webhook-endpoints"), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (
        created["id"].as_str().unwrap().to_string(),
        created["secret"].as_str().unwrap().to_string(),
    )
}

async fn endpoint(app: &TestApp, org: &Org, id: &str) -> Value {
    let (status, body) = app
        .op(
            Method::GET,
            &org.path(&format!("/webhook-endpoints/{id}")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn changes_reach_an_endpoint_signed_and_in_order(backend: Backend) {
    let app = app(backend, Duration::from_secs(3600)).await;
    let org = Org::new(&app).await;
    let receiver = Receiver::start(204);
    let (id, secret) = register(&app, &org, &receiver.url, json!({})).await;
    assert!(secret.starts_with("whsec_"));
    // Only member changes: the team created below is not sent.
    let members = Receiver::start(200);
    register(
        &app,
        &org,
        &members.url,
        json!({ "event_types": ["member.provisioned"] }),
    )
    .await;
    let events = [org.created("ada"), org.created("bob"), org.created("cy")];
    app.deliver(&events).await;
    crate::teams::new_team(&app, &org, "Later").await;

    let got = receiver.wait_accepted(4).await;
    let kinds: Vec<Value> = got.iter().map(|r| r.json()["type"].clone()).collect();
    assert_eq!(
        kinds,
        [
            "member.provisioned",
            "member.provisioned",
            "member.provisioned",
            "team.created"
        ]
    );
    let positions: Vec<i64> = got.iter().map(Received::position).collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    for delivery in &got {
        let timestamp: i64 = delivery.timestamp.parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
        assert_eq!(
            sign(&secret, &delivery.id, timestamp, delivery.body.as_bytes()).as_deref(),
            Some(delivery.signature.as_str()),
            "{delivery:?}"
        );
        assert_eq!(delivery.json()["data"]["workspace_id"], org.ws.as_str());
    }
    assert_eq!(got[0].json()["data"]["member"]["email"], "ada@example.com");
    assert_eq!(got[0].json()["data"]["cause"]["id"], events[0]["id"]);
    // The same change always has the same id.
    assert_eq!(got[0].id, format!("msg_{}_1", org.ws));

    let only_members = members.wait_accepted(3).await;
    assert!(only_members
        .iter()
        .all(|r| r.json()["type"] == "member.provisioned"));
    // The cursor is written once the round's last answer is in.
    let shown = wait_until(&app, &org, &id, |shown| shown["delivered_through"] == 4).await;
    assert!(shown.get("secret").is_none(), "the secret is shown once");
    let (status, attempts) = app
        .op(
            Method::GET,
            &org.path(&format!("/webhook-endpoints/{id}/attempts")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{attempts}");
    // Of the successes, each round's last is kept (every failure is).
    let attempts = attempts["data"].as_array().unwrap();
    assert!((1..=4).contains(&attempts.len()), "{attempts:?}");
    assert!(attempts.iter().all(|a| a["status_code"] == 204));
    assert_eq!(attempts[0]["position"], 4);
    verified_by_the_official_library(&secret, &got).await;
    let receiver_side = standardwebhooks::Webhook::new(&secret).unwrap();
    for delivery in &got {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("webhook-id", &delivery.id),
            ("webhook-timestamp", &delivery.timestamp),
            ("webhook-signature", &delivery.signature),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        receiver_side
            .verify(delivery.body.as_bytes(), &headers)
            .expect("the Standard Webhooks Rust library verifies the delivery");
        let tampered = delivery.body.replacen("\"position\":", "\"position\": ", 1);
        assert!(receiver_side.verify(tampered.as_bytes(), &headers).is_err());
    }
}

/// Every delivery verifies with the Standard Webhooks project's Python library, and a tampered copy of
/// each is refused by it.
async fn verified_by_the_official_library(secret: &str, got: &[Received]) {
    let python = crate::python::sdk_python("standardwebhooks").await;
    let deliveries: Vec<Value> = got
        .iter()
        .map(|r| {
            json!({
                "headers": { "webhook-id": r.id, "webhook-timestamp": r.timestamp,
                             "webhook-signature": r.signature },
                "body": r.body,
            })
        })
        .collect();
    let mut child = tokio::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sdk/verify_webhooks.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the verifier starts");
    let input = json!({ "secret": secret, "deliveries": deliveries }).to_string();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
    }
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let counts: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        counts,
        json!({ "verified": got.len(), "refused": got.len() })
    );
}

async fn a_failing_receiver_gets_everything_in_order_and_holds_up_no_other(backend: Backend) {
    let app = app(backend, Duration::from_secs(3600)).await;
    let org = Org::new(&app).await;
    let failing = Receiver::start(500);
    let healthy = Receiver::start(200);
    let (failing_id, _) = register(&app, &org, &failing.url, json!({})).await;
    register(&app, &org, &healthy.url, json!({})).await;
    let names = ["ada", "bob", "cy", "dee", "eve"];
    let events: Vec<Value> = names.iter().map(|n| org.created(n)).collect();
    app.deliver(&events).await;

    // The healthy endpoint gets everything while the other keeps failing its first change.
    healthy.wait_accepted(names.len()).await;
    let tried = wait_for(|| Some(failing.got()).filter(|got| got.len() >= 3)).await;
    assert!(tried.iter().all(|r| r.position() == 1));
    let shown = endpoint(&app, &org, &failing_id).await;
    assert!(shown["failing_since"].is_string(), "{shown}");
    assert!(shown["failed_attempts"].as_i64().unwrap() >= 1, "{shown}");
    assert_eq!(shown["enabled"], true);
    let (_, attempts) = app
        .op(
            Method::GET,
            &org.path(&format!("/webhook-endpoints/{failing_id}/attempts")),
            None,
        )
        .await;
    assert_eq!(attempts["data"][0]["status_code"], 500);
    assert_eq!(attempts["data"][0]["response"], "receiver says hello");

    // It recovers: everything arrives, in order, once.
    failing.status.store(200, Ordering::SeqCst);
    let got = failing.wait_accepted(names.len()).await;
    let positions: Vec<i64> = got.iter().map(Received::position).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    let shown = wait_until(&app, &org, &failing_id, |shown| {
        shown["failing_since"].is_null()
    })
    .await;
    assert_eq!(shown["failed_attempts"], 0);
}

/// The endpoint once `done` holds for it (within 30 s).
async fn wait_until(app: &TestApp, org: &Org, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = endpoint(app, org, id).await;
        if done(&shown) {
            return shown;
        }
        assert!(Instant::now() < deadline, "{shown}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Enables an endpoint over the API; returns it.
async fn enable(app: &TestApp, org: &Org, id: &str) -> Value {
    let (status, body) = app
        .op(
            Method::PATCH,
            &org.path(&format!("/webhook-endpoints/{id}")),
            Some(json!({ "enabled": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn wait_disabled(app: &TestApp, org: &Org, id: &str) -> Value {
    wait_until(app, org, id, |shown| shown["enabled"] == false).await
}

async fn gone_and_failing_for_too_long_disable_an_endpoint(backend: Backend) {
    let app = app(backend, Duration::from_millis(300)).await;
    let org = Org::new(&app).await;
    let gone = Receiver::start(410);
    let broken = Receiver::start(503);
    let (gone_id, _) = register(&app, &org, &gone.url, json!({})).await;
    let (broken_id, _) = register(&app, &org, &broken.url, json!({})).await;
    app.deliver(&[org.created("ada")]).await;

    let shown = wait_disabled(&app, &org, &gone_id).await;
    assert_eq!(shown["disabled_reason"], "the endpoint answered 410 Gone");
    assert_eq!(gone.got().len(), 1, "no attempt after 410");
    let shown = wait_disabled(&app, &org, &broken_id).await;
    let reason = shown["disabled_reason"].as_str().unwrap();
    assert!(reason.starts_with("failing since"), "{reason}");
    assert!(reason.contains("last answer 503"), "{reason}");

    // Enabled again, it sends on from where it stopped.
    broken.status.store(200, Ordering::SeqCst);
    let body = enable(&app, &org, &broken_id).await;
    assert_eq!(body["disabled_reason"], Value::Null);
    let got = broken.wait_accepted(1).await;
    assert_eq!(got[0].position(), 1);
}

async fn urls_to_private_addresses_are_refused_unless_allowed(backend: Backend) {
    let app = crate::helpers::spawn_app(backend).await;
    let org = Org::new(&app).await;
    for url in [
        "http://hooks.example.com/",
        "https://127.0.0.1/hooks",
        "https://169.254.169.254/latest",
        "https://[::1]/",
        "https://localhost/",
        "ftp://hooks.example.com/",
    ] {
        let (status, body) = app
            .op(
                Method::POST,
                &org.path("/webhook-endpoints"),
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["code"], "invalid_field", "{url}");
    }
    let (status, body) = app
        .op(
            Method::POST,
            &org.path("/webhook-endpoints"),
            Some(
                json!({ "url": "https://hooks.example.com/rollcall", "enabled": false,
                         "event_types": ["member.deprovisioned"] }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["event_types"], json!(["member.deprovisioned"]));
    let (status, body) = app
        .op(
            Method::POST,
            &org.path("/webhook-endpoints"),
            Some(
                json!({ "url": "https://hooks.example.com/", "event_types": ["member.exploded"] }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn an_admin_manages_only_its_own_workspaces_endpoints(backend: Backend) {
    let app = app(backend, Duration::from_secs(3600)).await;
    let one = Org::new(&app).await;
    let other = Org::new(&app).await;
    let receiver = Receiver::start(200);
    let (theirs, _) = register(&app, &other, &receiver.url, json!({})).await;
    let token = app.admin_token(&one.ws).await;
    let (status, created) = app
        .call(
            Method::POST,
            &one.path("/webhook-endpoints"),
            Some(&token),
            Some(json!({ "url": receiver.url })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let mine = created["id"].as_str().unwrap();
    for path in [
        other.path(&format!("/webhook-endpoints/{theirs}")),
        one.path(&format!("/webhook-endpoints/{theirs}")),
    ] {
        let (status, body) = app.call(Method::GET, &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let replay = one.path(&format!("/webhook-endpoints/{mine}/replay"));
    let (status, body) = app
        .call(
            Method::POST,
            &replay,
            Some(&token),
            Some(json!({ "after": 0 })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The operator replays: the changes after 0 are sent again.
    app.deliver(&[one.created("ada")]).await;
    receiver.wait_accepted(1).await;
    let (status, body) = app
        .op(Method::POST, &replay, Some(json!({ "after": 0 })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = receiver.wait_accepted(2).await;
    assert_eq!(got[0].id, got[1].id, "the same change, the same id");
    let (status, _) = app
        .call(
            Method::DELETE,
            &one.path(&format!("/webhook-endpoints/{mine}")),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// `rollcall serve` on `url`, delivering to loopback.
fn serve(url: &str) -> crate::process::Started {
    let mut command = crate::process::rollcall();
    command
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("WORKOS_WEBHOOK_SECRETS", crate::helpers::SECRET)
        .env("ROLLCALL_OPERATOR_TOKEN", crate::helpers::OPERATOR_TOKEN)
        .env("ROLLCALL_OUTBOUND_ALLOW_PRIVATE", "true")
        .env("ROLLCALL_OUTBOUND_FIRST_RETRY", "50ms");
    crate::process::Started::start(command)
}

async fn a_killed_service_loses_no_change_for_its_endpoints(backend: Backend) {
    use rollcall::secret::ExposeSecret;
    const EVENTS: usize = 400;
    let database = crate::helpers::TestDatabase::new(backend);
    let url = match &database.target {
        rollcall::db::DatabaseTarget::Sqlite(path) => format!("sqlite://{path}"),
        rollcall::db::DatabaseTarget::Postgres(url) => url.expose_secret().to_owned(),
    };
    let first = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || serve(&url))
            .await
            .unwrap()
    };
    let api = format!("http://127.0.0.1:{}", first.port);
    let client = reqwest::Client::new();
    let dir = crate::broker::TestDirectory::new();
    let op = |method: Method, path: String, body: Value| {
        client
            .request(method, format!("{api}{path}"))
            .bearer_auth(crate::helpers::OPERATOR_TOKEN)
            .json(&body)
            .send()
    };
    let ws: Value = op(
        Method::POST,
        "/api/v1/workspaces".into(),
        json!({ "name": "Killed", "plan": "growth", "organization_id": dir.organization_id }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let ws = ws["id"].as_str().unwrap().to_string();
    let enabled = op(
        Method::PUT,
        format!("/api/v1/workspaces/{ws}/directory-sync"),
        json!({ "enabled": true }),
    )
    .await
    .unwrap();
    assert!(enabled.status().is_success());
    // A receiver slow enough that deliveries are in flight when the service dies.
    let got: Arc<Mutex<Vec<i64>>> = Arc::default();
    let kept = got.clone();
    let (receiver, _server) = crate::helpers::serve_http(move |body: Bytes| {
        let kept = kept.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            let payload: Value = serde_json::from_slice(&body).unwrap();
            kept.lock()
                .unwrap()
                .push(payload["data"]["position"].as_i64().unwrap());
            HttpResponse::NoContent().finish()
        }
    });
    let created = op(
        Method::POST,
        format!("/api/v1/workspaces/{ws}/webhook-endpoints"),
        json!({ "url": receiver }),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // A burst from eight senders; the service is killed once some changes have reached the receiver.
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = Vec::new();
    for s in 0..8 {
        let (client, api, dir, sent) = (client.clone(), api.clone(), dir.clone(), sent.clone());
        senders.push(tokio::spawn(async move {
            for n in (s..EVENTS).step_by(8) {
                let at = crate::broker::at(1);
                let user = dir.user(
                    &format!("directory_user_{n}_{}", dir.tag),
                    &format!("idp-{n}"),
                    Some(&format!("person{n}@example.com")),
                    "Person",
                    "active",
                    &at,
                );
                let body = crate::broker::event("dsync.user.created", user, &at).to_string();
                let signature = rollcall::workos::signature::sign(
                    crate::helpers::SECRET,
                    rollcall::workos::signature::now_ms(),
                    body.as_bytes(),
                );
                let answer = client
                    .post(format!("{api}/webhooks/workos"))
                    .header("WorkOS-Signature", signature)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                if answer.is_err() {
                    return; // The service is gone.
                }
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.lock().unwrap().len() < 20 {
        assert!(Instant::now() < deadline, "nothing was delivered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for sender in senders {
        sender.await.unwrap();
    }
    drop(first);
    let received_before = got.lock().unwrap().len();

    // Started again, it applies what was acknowledged and sends every change.
    let second = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || serve(&url))
            .await
            .unwrap()
    };
    let db = database.open();
    let last = || {
        db.read(|c| {
            use diesel::prelude::*;
            use rollcall::db::schema::workspaces;
            workspaces::table
                .find(&ws)
                .select(workspaces::change_position)
                .first::<i64>(c)
                .map_err(rollcall::db::DbError::from)
        })
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let positions = got.lock().unwrap().clone();
        let last = last();
        let mut first_seen: Vec<i64> = Vec::new();
        for p in &positions {
            if !first_seen.contains(p) {
                first_seen.push(*p);
            }
        }
        let all: Vec<i64> = (1..=last).collect();
        if last >= received_before as i64
            && first_seen == all
            && crate::helpers::waiting_events(&db) == 0
        {
            // Every change, first seen in feed order; some sent twice (at least once).
            assert!(last as usize <= EVENTS);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restart: {} changes, received first in this order: {first_seen:?}",
            last
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);
}

/// `rollcall webhook-endpoints …` on the app's database; returns whether it succeeded, stdout and stderr.
async fn cli(app: &TestApp, args: &[&str], allow_private: bool) -> (bool, String, String) {
    let args: Vec<&str> = std::iter::once("webhook-endpoints")
        .chain(args.iter().copied())
        .collect();
    let allow = allow_private.to_string();
    crate::process::on_database(app, &args, &[("ROLLCALL_OUTBOUND_ALLOW_PRIVATE", &allow)]).await
}

async fn the_command_line_registers_lists_disables_and_deletes(backend: Backend) {
    let app = app(backend, Duration::from_secs(3600)).await;
    let org = Org::new(&app).await;
    let receiver = Receiver::start(200);
    let ws = org.ws.as_str();
    let (ok, _, err) = cli(
        &app,
        &["create", "--workspace", ws, "--url", &receiver.url],
        false,
    )
    .await;
    assert!(
        !ok,
        "http:// to loopback is refused without ROLLCALL_OUTBOUND_ALLOW_PRIVATE"
    );
    assert!(err.contains("url: must be https://"), "{err}");
    let (ok, _, err) = cli(
        &app,
        &[
            "create",
            "--workspace",
            ws,
            "--url",
            &receiver.url,
            "--batch-size",
            "500",
        ],
        true,
    )
    .await;
    assert!(!ok && err.contains("batch_size: from 1 to 100"), "{err}");
    let (ok, secret, err) = cli(
        &app,
        &[
            "create",
            "--workspace",
            ws,
            "--url",
            &receiver.url,
            "--event-type",
            "member.provisioned",
        ],
        true,
    )
    .await;
    assert!(ok, "{err}");
    let secret = secret.trim().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(err.contains("shown only this once"), "{err}");

    app.deliver(&[org.created("ada")]).await;
    let got = receiver.wait_accepted(1).await;
    let timestamp: i64 = got[0].timestamp.parse().unwrap();
    assert_eq!(
        sign(&secret, &got[0].id, timestamp, got[0].body.as_bytes()).as_deref(),
        Some(got[0].signature.as_str())
    );

    let (ok, listed, err) = cli(&app, &["list", "--workspace", ws], false).await;
    assert!(ok, "{err}");
    let id = listed
        .lines()
        .nth(1)
        .and_then(|line| line.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        listed.contains("enabled") && listed.contains(&receiver.url),
        "{listed}"
    );
    let (ok, _, err) = cli(&app, &["disable", "--workspace", ws, &id], false).await;
    assert!(ok, "{err}");
    assert!(err.contains("disabled by hand"), "{err}");
    assert_eq!(endpoint(&app, &org, &id).await["enabled"], false);
    let (ok, _, err) = cli(&app, &["delete", "--workspace", ws, &id], false).await;
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&app, &["list", "--workspace", ws], false).await;
    assert!(ok && err.contains("no webhook endpoints"), "{err}");
    let (ok, _, err) = cli(&app, &["list", "--workspace", "ws_nope"], false).await;
    assert!(!ok && err.contains("workspace not found"), "{err}");
}

async fn an_endpoint_behind_retention_is_stopped_not_skipped_ahead(backend: Backend) {
    let app = app(backend, Duration::from_secs(3600)).await;
    let org = Org::new(&app).await;
    let receiver = Receiver::start(200);
    let (id, _) = register(&app, &org, &receiver.url, json!({ "enabled": false })).await;
    app.deliver(&[org.created("ada"), org.created("bob"), org.created("cy")])
        .await;
    // The first two changes are older than retention, and pruned before the endpoint got them.
    crate::changes::prune_first_changes(&app, &org.ws, 2);
    enable(&app, &org, &id).await;
    let shown = wait_disabled(&app, &org, &id).await;
    let reason = shown["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("pruned"), "{reason}");
    assert_eq!(shown["delivered_through"], 0);
    assert!(receiver.got().is_empty(), "nothing sent past the gap");

    // Replayed from the oldest position kept, it sends on from there.
    let (status, body) = app
        .op(
            Method::POST,
            &org.path(&format!("/webhook-endpoints/{id}/replay")),
            Some(json!({ "after": 2 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    enable(&app, &org, &id).await;
    let got = receiver.wait_accepted(1).await;
    assert_eq!(got[0].position(), 3);
}

async fn batches_carry_changes_in_order_and_a_retry_carries_the_same_ones(backend: Backend) {
    let app = app(backend, Duration::from_secs(3600)).await;
    let org = Org::new(&app).await;
    for size in [0, 101] {
        let (status, body) = app
            .op(
                Method::POST,
                &org.path("/webhook-endpoints"),
                Some(json!({ "url": "http://127.0.0.1:9/hooks", "batch_size": size })),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("batch_size"),
            "{body}"
        );
    }
    let receiver = Receiver::start(500);
    let (id, secret) = register(&app, &org, &receiver.url, json!({ "batch_size": 2 })).await;
    assert_eq!(endpoint(&app, &org, &id).await["batch_size"], 2);
    app.deliver(&[org.created("ada")]).await;
    let tried = |receiver: &Receiver, at_least: usize| {
        let got = receiver.got();
        (got.len() >= at_least).then_some(got)
    };
    let first = wait_for(|| tried(&receiver, 2)).await;
    // More changes arrive while the first message keeps failing: its retries still carry the same
    // changes under the same id.
    let more = ["bob", "cy", "dee", "eve"].map(|name| org.created(name));
    app.deliver(&more).await;
    let seen = receiver.got().len();
    let failed = wait_for(|| tried(&receiver, seen + 2)).await;
    let message = (&first[0].id, first[0].batch_positions());
    assert_eq!(message.1, [1]);
    assert!(
        failed
            .iter()
            .all(|r| (&r.id, r.batch_positions()) == (message.0, message.1.clone())),
        "{:?}",
        failed
            .iter()
            .map(|r| (&r.id, r.batch_positions()))
            .collect::<Vec<_>>()
    );
    assert_eq!(*message.0, format!("msg_{}_1_1", org.ws));

    receiver.status.store(200, Ordering::SeqCst);
    let accepted = wait_for(|| {
        let accepted = receiver.accepted();
        let count: usize = accepted.iter().map(|r| r.batch_positions().len()).sum();
        (count >= 5).then_some(accepted)
    })
    .await;
    assert_eq!(&accepted[0].id, message.0);
    let positions: Vec<i64> = accepted
        .iter()
        .flat_map(Received::batch_positions)
        .collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    let sizes: Vec<usize> = accepted.iter().map(|r| r.batch_positions().len()).collect();
    assert_eq!(sizes, [1, 2, 2]);
    let emails: Vec<Value> = accepted
        .iter()
        .flat_map(|r| r.json()["data"]["changes"].as_array().unwrap().clone())
        .map(|c| c["member"]["email"].clone())
        .collect();
    assert_eq!(emails[4], "eve@example.com");
    verified_by_the_official_library(&secret, &accepted).await;

    // Back to one change per message.
    let (status, body) = app
        .op(
            Method::PATCH,
            &org.path(&format!("/webhook-endpoints/{id}")),
            Some(json!({ "batch_size": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.deliver(&[org.created("fay")]).await;
    let got = receiver.wait_accepted(accepted.len() + 1).await;
    let single = got.last().unwrap();
    assert_eq!(single.json()["type"], "member.provisioned");
    assert_eq!(single.position(), 6);
    assert_eq!(single.id, format!("msg_{}_6", org.ws));
}

/// Waits up to 30 s for `ready` to answer something.
async fn wait_for<T>(mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < deadline, "not ready after 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two instances on one PostgreSQL share an endpoint through its lease: changes made through either reach
/// the endpoint once each, in feed order, whichever instance sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_send_each_change_once_in_order() {
    let database = crate::helpers::TestDatabase::new(Backend::Postgres);
    let adjust = |s: &mut rollcall::config::Settings| {
        s.outbound_allow_private = true;
        s.outbound_first_retry = Duration::from_millis(20);
    };
    let first = crate::helpers::spawn_app_on(database.target.clone(), adjust).await;
    let second = crate::helpers::spawn_app_on(database.target.clone(), adjust).await;
    let org = Org::new(&first).await;
    let receiver = Receiver::start(204);
    register(&second, &org, &receiver.url, json!({})).await;
    let people = 30;
    for i in 0..people {
        let through = if i % 2 == 0 { &first } else { &second };
        through.deliver(&[org.created(&format!("p{i}"))]).await;
    }
    let got = receiver.wait_accepted(people).await;
    // Anything more that arrives meanwhile would be a change sent twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let positions: Vec<i64> = receiver.accepted().iter().map(Received::position).collect();
    assert_eq!(
        positions,
        (1..=people as i64).collect::<Vec<_>>(),
        "{got:?}"
    );
}
