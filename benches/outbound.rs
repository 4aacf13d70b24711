//! Outbound webhooks end to end: from a broker webhook's acknowledgement to the product's receipt of the
//! change it made. `rollcall serve` runs as its own process (the release build); this program sends it
//! BENCH_STEADY_RATE (2,000) signed `dsync.user.created` a second for BENCH_STEADY_SECS (20) from 64
//! connections, and runs the product's receivers: BENCH_ENDPOINTS endpoints (`1,10`: one run with one
//! endpoint, one with ten), each answering 204 at once, registered with each of BENCH_BATCH (`1,100`: one
//! change per message, then up to 100 in a `change.batch`). Each event makes one `member.provisioned`, which
//! names the event as its cause; the time from the event's 200 to each endpoint's receipt of that change is
//! measured on this program's clock.
//!
//! `cargo bench --bench outbound` (env: BENCH_STEADY_RATE, BENCH_STEADY_SECS, BENCH_ENDPOINTS, BENCH_BATCH,
//! BENCH_BACKENDS, BENCH_POSTGRES_URL). Under `cargo test --all-targets` it runs a short smoke pass instead.

mod support;

use actix_web::web::Bytes;
use actix_web::HttpResponse;
use reqwest::Method;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    backends, database_url, env_or, free_port, measuring, operator, paced, percentile_ms, runtime,
    scratch, sign_and_post, spawn, synced_workspace, wait_until_up, OPERATOR, SECRET,
};

const ORGANIZATION: &str = "org_outbound";
const DIRECTORY: &str = "directory_outbound";
const SENDERS: usize = 64;

fn event_body(n: u64) -> Vec<u8> {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "object": "event", "id": format!("event_outbound_{n:09}"), "event": "dsync.user.created",
        "created_at": at,
        "data": {
            "object": "directory_user", "id": format!("directory_user_outbound_{n:09}"),
            "directory_id": DIRECTORY, "organization_id": ORGANIZATION, "idp_id": format!("idp-{n}"),
            "email": format!("person-{n}@bench.example"), "first_name": "Bench", "last_name": "Person",
            "state": "active", "raw_attributes": {}, "created_at": at, "updated_at": at
        }
    })
    .to_string()
    .into_bytes()
}

/// What the receivers got: for each event, when each endpoint received its change.
type Receipts = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// Receivers on one port: every path answers 204 and records the receipt by the change's cause.
fn receivers(receipts: Receipts) -> (String, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = actix_web::HttpServer::new(move || {
        let receipts = receipts.clone();
        actix_web::App::new().default_service(actix_web::web::to(move |body: Bytes| {
            let receipts = receipts.clone();
            async move {
                let at = Instant::now();
                if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&body) {
                    let changes = match payload["data"]["changes"].as_array() {
                        Some(batch) => batch.clone(),
                        None => vec![payload["data"].clone()],
                    };
                    let mut receipts = receipts.lock().unwrap();
                    for change in changes {
                        if let Some(event) = change["cause"]["id"].as_str() {
                            receipts.entry(event.to_string()).or_default().push(at);
                        }
                    }
                }
                HttpResponse::NoContent().finish()
            }
        }))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (url, handle)
}

struct Run {
    sent_per_s: f64,
    acks: Vec<Duration>,
    latencies: Vec<Duration>,
    expected: usize,
    received: usize,
}

async fn run(base: &str, endpoints: usize, batch_size: usize, rate: u64, seconds: u64) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(SENDERS + 2)
        .build()
        .unwrap();
    wait_until_up(&client, &format!("{base}/healthz")).await;
    let ws = synced_workspace(&client, base, ORGANIZATION).await;
    let receipts: Receipts = Arc::default();
    let (url, _server) = receivers(receipts.clone());
    for e in 0..endpoints {
        operator(
            &client,
            Method::POST,
            format!("{base}/api/v1/workspaces/{ws}/webhook-endpoints"),
            Some(json!({ "url": format!("{url}/endpoint-{e}"), "batch_size": batch_size })),
            201,
        )
        .await;
    }
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (mut acks, sending) = {
        let (client, acked, base) = (client.clone(), acked.clone(), base.to_string());
        paced(rate, seconds, SENDERS, move |n| {
            let (client, acked, base) = (client.clone(), acked.clone(), base.clone());
            async move {
                let (status, took) = sign_and_post(&client, &base, event_body(n)).await;
                assert_eq!(status, 200, "the webhook is acknowledged");
                acked
                    .lock()
                    .unwrap()
                    .insert(format!("event_outbound_{n:09}"), Instant::now());
                took
            }
        })
        .await
    };
    let sent = acks.len();
    let expected = sent * endpoints;
    let wait_until = Instant::now() + Duration::from_secs(120);
    loop {
        let received: usize = receipts.lock().unwrap().values().map(Vec::len).sum();
        if received >= expected || Instant::now() > wait_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked = acked.lock().unwrap();
    let receipts = receipts.lock().unwrap();
    let mut latencies: Vec<Duration> = Vec::new();
    for (event, at) in acked.iter() {
        for received in receipts.get(event).into_iter().flatten() {
            latencies.push(received.saturating_duration_since(*at));
        }
    }
    latencies.sort();
    acks.sort();
    Run {
        sent_per_s: sent as f64 / sending.as_secs_f64(),
        acks,
        received: latencies.len(),
        latencies,
        expected,
    }
}

fn main() {
    let smoke = !measuring();
    let seconds = env_or("BENCH_STEADY_SECS", if smoke { 2 } else { 20 }) as u64;
    let rate = env_or("BENCH_STEADY_RATE", if smoke { 100 } else { 2_000 }) as u64;
    let list = |name: &str, smoke_value: &str, value: &str| -> Vec<usize> {
        std::env::var(name)
            .unwrap_or_else(|_| if smoke { smoke_value } else { value }.into())
            .split(',')
            .filter_map(|c| c.trim().parse().ok())
            .collect()
    };
    let counts = list("BENCH_ENDPOINTS", "2", "1,10");
    let batch_sizes = list("BENCH_BATCH", "1,5", "1,100");
    let runtime = runtime();
    let mut rows = Vec::new();
    for backend in backends() {
        for (&endpoints, &batch_size) in counts
            .iter()
            .flat_map(|c| batch_sizes.iter().map(move |b| (c, b)))
        {
            let scratch = scratch(&backend);
            let port = free_port();
            let base = format!("http://127.0.0.1:{port}");
            let _service = spawn(
                &["serve"],
                &[
                    ("DATABASE_URL", database_url(&scratch.target)),
                    ("ROLLCALL_BIND", format!("127.0.0.1:{port}")),
                    ("ROLLCALL_OPERATOR_TOKEN", OPERATOR.to_string()),
                    ("WORKOS_WEBHOOK_SECRETS", SECRET.to_string()),
                    ("ROLLCALL_OUTBOUND_ALLOW_PRIVATE", "true".to_string()),
                ],
            );
            let r = runtime.block_on(run(&base, endpoints, batch_size, rate, seconds));
            assert_eq!(
                r.received, r.expected,
                "every change reached every endpoint"
            );
            rows.push(format!(
                "| {backend} | {endpoints} | {batch_size} | {:.0} | {:.1} | {} | {:.0} / {:.0} / {:.0} ms |",
                r.sent_per_s,
                percentile_ms(&r.acks, 0.99),
                r.received,
                percentile_ms(&r.latencies, 0.50),
                percentile_ms(&r.latencies, 0.99),
                percentile_ms(&r.latencies, 1.0),
            ));
        }
    }
    println!("\nOutbound webhooks: {rate} dsync.user.created/s for {seconds} s, each change sent to every endpoint\n");
    println!("| backend | endpoints | changes per message | sent/s | ack p99 ms | changes received | webhook ack → product receipt p50 / p99 / max |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
}
