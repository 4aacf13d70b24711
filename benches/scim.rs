//! Provisioning over SCIM: BENCH_USERS (10,000) users and BENCH_GROUPS (100) groups pushed to one
//! workspace's SCIM directory by BENCH_CLIENTS (8) concurrent clients, as an identity provider's first
//! sync does: every user created (`POST /Users`), every group created empty (`POST /Groups`), then its
//! members added ten at a time (`PATCH` with an `add` of `members`). Measured: requests per second and
//! each phase's latency (p50, p99), and the time until every user is an active member listed by the API
//! (sent → visible, read every 50 ms). Meanwhile a second workspace's identity provider pushes one user
//! and reads it back by filter every 100 ms: its latencies are the figure of another tenant while one is
//! busy. The service runs in this process without a SCIM rate limit (`ROLLCALL_SCIM_RATE=0`; the default
//! is 100 requests a second per directory).
//!
//! `cargo bench --bench scim` (env: BENCH_USERS, BENCH_GROUPS, BENCH_CLIENTS, BENCH_BACKENDS,
//! BENCH_POSTGRES_URL). Under `cargo test --all-targets` it runs a short smoke pass instead.

mod support;

use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    backends, env_or, measuring, operator, percentile_ms, runtime, scratch, start_service_with,
    synced_workspace,
};

/// Entra ID's provisioning pace as Microsoft documents it: just under 1,000 requests a minute.
const ENTRA_PER_SECOND: f64 = 1_000.0 / 60.0;

/// One identity provider's view of a SCIM directory.
#[derive(Clone)]
struct Idp {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Idp {
    async fn new(client: &reqwest::Client, base: &str, ws: &str) -> Idp {
        let created = operator(
            client,
            Method::POST,
            format!("{base}/api/v1/workspaces/{ws}/scim-directories"),
            Some(json!({})),
            201,
        )
        .await;
        Idp {
            client: client.clone(),
            base: format!("{base}/scim/v2/{}", created["id"].as_str().unwrap()),
            token: created["token"]["secret"].as_str().unwrap().to_string(),
        }
    }

    /// Sends one request; returns its JSON answer and how long it took. Panics on a refusal.
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (Value, Duration) {
        let started = Instant::now();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let took = started.elapsed();
        assert!(status.is_success(), "{path}: {status} {text}");
        (serde_json::from_str(&text).unwrap_or(Value::Null), took)
    }
}

/// Runs `jobs` requests from `clients` concurrent clients, each taking the next job when its last one is
/// answered; returns each answer's JSON in job order and the latencies.
async fn run_clients<F, Fut>(clients: usize, jobs: usize, send: F) -> (Vec<Value>, Vec<Duration>)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (Value, Duration)> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, send) = (next.clone(), send.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let job = next.fetch_add(1, Ordering::Relaxed);
                if job >= jobs {
                    return done;
                }
                let (answer, took) = send(job).await;
                done.push((job, answer, took));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_by_key(|(job, _, _)| *job);
    let mut latencies: Vec<Duration> = all.iter().map(|(_, _, took)| *took).collect();
    latencies.sort();
    (
        all.into_iter().map(|(_, answer, _)| answer).collect(),
        latencies,
    )
}

/// Active members of the workspace, as the API counts them.
async fn active_members(client: &reqwest::Client, base: &str, ws: &str) -> i64 {
    operator(
        client,
        Method::GET,
        format!("{base}/api/v1/workspaces/{ws}/members?status=active&limit=1"),
        None,
        200,
    )
    .await["list_metadata"]["total"]
        .as_i64()
        .unwrap_or(0)
}

struct Phase {
    name: &'static str,
    requests: usize,
    took: Duration,
    latencies: Vec<Duration>,
}

/// The ids of the resources a phase created, in order.
fn ids_of(created: &[Value]) -> Arc<Vec<String>> {
    Arc::new(
        created
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect(),
    )
}

fn main() {
    let users = env_or("BENCH_USERS", if measuring() { 10_000 } else { 200 });
    let groups = env_or("BENCH_GROUPS", if measuring() { 100 } else { 4 });
    let clients = env_or("BENCH_CLIENTS", 8);
    let runtime = runtime();
    let mut rows = Vec::new();
    let mut tenant_rows = Vec::new();
    for backend in backends() {
        let scratch = scratch(&backend);
        let (phases, visible, last_sent, quiet) = runtime.block_on(async {
            let service = start_service_with(scratch.target.clone(), |s| s.scim_rate = 0);
            let base = service.base.clone();
            let client = reqwest::Client::new();
            let ws = synced_workspace(&client, &base, "org_scim_bench").await;
            let idp = Idp::new(&client, &base, &ws).await;
            let quiet_ws = synced_workspace(&client, &base, "org_scim_quiet").await;
            let quiet_idp = Idp::new(&client, &base, &quiet_ws).await;

            // The other tenant: a user pushed and found by filter every 100 ms until the busy one ends.
            let busy = Arc::new(AtomicBool::new(true));
            let quiet = {
                let (busy, idp) = (busy.clone(), quiet_idp.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut n = 0;
                    while busy.load(Ordering::Relaxed) {
                        let name = format!("quiet-{n}@quiet.example");
                        let (_, pushed) = idp
                            .send(Method::POST, "/Users", Some(json!({"userName": name})))
                            .await;
                        let filter = format!("/Users?filter=userName%20eq%20%22{name}%22");
                        let (found, read) = idp.send(Method::GET, &filter, None).await;
                        assert_eq!(found["totalResults"], 1);
                        latencies.push(pushed);
                        latencies.push(read);
                        n += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    latencies.sort();
                    latencies
                })
            };

            let started = Instant::now();
            let mut phases = Vec::new();
            let phase_start = Instant::now();
            let send = {
                let idp = idp.clone();
                move |i: usize| {
                    let idp = idp.clone();
                    async move {
                        let email = format!("person-{i:06}@scim.example");
                        let user = json!({
                            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                            "userName": email, "externalId": format!("ext-{i}"), "active": true,
                            "name": {"givenName": "Person", "familyName": format!("{i}")},
                            "emails": [{"primary": true, "type": "work", "value": email}]
                        });
                        idp.send(Method::POST, "/Users", Some(user)).await
                    }
                }
            };
            let (created, latencies) = run_clients(clients, users, send).await;
            let user_ids = ids_of(&created);
            phases.push(Phase {
                name: "POST /Users",
                requests: users,
                took: phase_start.elapsed(),
                latencies,
            });

            let phase_start = Instant::now();
            let send = {
                let idp = idp.clone();
                move |g: usize| {
                    let idp = idp.clone();
                    async move {
                        let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                           "displayName": format!("Group {g:03}")});
                        idp.send(Method::POST, "/Groups", Some(group)).await
                    }
                }
            };
            let (created, latencies) = run_clients(clients, groups, send).await;
            let group_ids = ids_of(&created);
            phases.push(Phase {
                name: "POST /Groups",
                requests: groups,
                took: phase_start.elapsed(),
                latencies,
            });

            // Each user joins one group, ten members per PATCH.
            let batches: Arc<Vec<(usize, Vec<usize>)>> = Arc::new({
                let mut members: Vec<Vec<usize>> = vec![Vec::new(); groups];
                for user in 0..users {
                    members[user % groups].push(user);
                }
                members
                    .into_iter()
                    .enumerate()
                    .flat_map(|(g, users)| {
                        users
                            .chunks(10)
                            .map(|c| (g, c.to_vec()))
                            .collect::<Vec<_>>()
                    })
                    .collect()
            });
            let phase_start = Instant::now();
            let send = {
                let (idp, batches, user_ids, group_ids) =
                    (idp.clone(), batches.clone(), user_ids.clone(), group_ids.clone());
                move |b: usize| {
                    let (idp, batches, user_ids, group_ids) =
                        (idp.clone(), batches.clone(), user_ids.clone(), group_ids.clone());
                    async move {
                        let (group, members) = &batches[b];
                        let value: Vec<Value> = members
                            .iter()
                            .map(|u| json!({"value": user_ids[*u]}))
                            .collect();
                        let patch = json!({
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "add", "path": "members", "value": value}]
                        });
                        idp.send(
                            Method::PATCH,
                            &format!("/Groups/{}", group_ids[*group]),
                            Some(patch),
                        )
                        .await
                    }
                }
            };
            let (_, latencies) = run_clients(clients, batches.len(), send).await;
            phases.push(Phase {
                name: "PATCH /Groups (10 members each)",
                requests: batches.len(),
                took: phase_start.elapsed(),
                latencies,
            });
            let last_sent = started.elapsed();

            // Sent → visible: every user an active member the API lists.
            let deadline = Instant::now() + Duration::from_secs(600);
            loop {
                if active_members(&client, &base, &ws).await >= users as i64 {
                    break;
                }
                assert!(Instant::now() < deadline, "not every user became a member");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let visible = started.elapsed();
            busy.store(false, Ordering::Relaxed);
            let quiet = quiet.await.unwrap();
            service.stop().await;
            (phases, visible, last_sent, quiet)
        });
        let all_requests: usize = phases.iter().map(|p| p.requests).sum();
        for phase in &phases {
            rows.push(format!(
                "| {backend} | {} | {} | {:.1} s | **{:.0}** | {:.1} | {:.1} |",
                phase.name,
                phase.requests,
                phase.took.as_secs_f64(),
                phase.requests as f64 / phase.took.as_secs_f64(),
                percentile_ms(&phase.latencies, 0.5),
                percentile_ms(&phase.latencies, 0.99),
            ));
        }
        let mut everything: Vec<Duration> =
            phases.iter().flat_map(|p| p.latencies.clone()).collect();
        everything.sort();
        let rate = all_requests as f64 / last_sent.as_secs_f64();
        rows.push(format!(
            "| {backend} | **all** ({users} users, {groups} groups) | {all_requests} | {:.1} s | **{rate:.0}** ({:.0}× Entra's pace) | {:.1} | {:.1} |",
            last_sent.as_secs_f64(),
            rate / ENTRA_PER_SECOND,
            percentile_ms(&everything, 0.5),
            percentile_ms(&everything, 0.99),
        ));
        tenant_rows.push(format!(
            "| {backend} | {:.1} s | {:.1} s | {:.1} s | {} | {:.1} | {:.1} |",
            visible.as_secs_f64(),
            (visible - last_sent).as_secs_f64(),
            all_requests as f64 / ENTRA_PER_SECOND,
            quiet.len(),
            percentile_ms(&quiet, 0.5),
            percentile_ms(&quiet, 0.99),
        ));
    }
    println!("\nSCIM provisioning: {users} users, {groups} groups, {clients} concurrent clients\n");
    println!("| backend | requests | count | took | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    println!("\nSent → visible, and another workspace's identity provider meanwhile (a push and a filtered read every 100 ms)\n");
    println!("| backend | every user a member through the API after | after the last request | Entra would take to send it all | other tenant's requests | their p50 ms | their p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in tenant_rows {
        println!("{row}");
    }
}
