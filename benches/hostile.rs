//! Webhooks under a forged flood: `rollcall serve` as its own process receives signed webhooks at a steady
//! rate while attackers without the secret send large forged requests as fast as they can. Reports how
//! fast each forged request is refused and whether valid webhooks keep their acknowledgement times.
//!
//! Phases (each BENCH_HOSTILE_SECS, default 10; valid webhooks at BENCH_HOSTILE_RATE, default 200/s):
//! 1. **quiet**: valid webhooks alone;
//! 2. **many signatures**: plus BENCH_ATTACKERS (4) senders of a 1 MiB body whose header carries 4,000
//!    `v1=00` entries (refused from the header, before the body is read);
//! 3. **wrong signature**: plus the same senders with one well-formed but wrong `v1` and a 1 MiB body (the
//!    body must be read and its MAC computed once per secret, off the async workers).
//!
//! `cargo bench --bench hostile` (env: BENCH_HOSTILE_SECS, BENCH_HOSTILE_RATE, BENCH_ATTACKERS,
//! BENCH_BACKENDS, default `sqlite`).

mod support;

use rollcall::workos::signature;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    database_url, env_or, free_port, measuring, percentile_ms, runtime, scratch, spawn,
    synced_workspace, wait_until_up, OPERATOR, SECRET,
};

const ORGANIZATION: &str = "org_hostile";

/// What the attackers send.
#[derive(Clone, Copy)]
enum Forgery {
    ManySignatures,
    WrongSignature,
}

impl Forgery {
    fn header(self) -> String {
        let now = signature::now_ms();
        match self {
            Forgery::ManySignatures => format!("t={now}{}", ", v1=00".repeat(4000)),
            Forgery::WrongSignature => format!("t={now}, v1={}", "ab".repeat(32)),
        }
    }
}

struct Phase {
    name: &'static str,
    acks: Vec<Duration>,
    refusals: Vec<Duration>,
    refused_other: usize,
}

fn valid_body(n: u64) -> Vec<u8> {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "object": "event", "id": format!("event_hostile_{n:09}"), "event": "dsync.user.created",
        "created_at": at,
        "data": {
            "object": "directory_user", "id": format!("directory_user_hostile_{n}"),
            "directory_id": "directory_hostile", "organization_id": ORGANIZATION,
            "idp_id": format!("idp-{n}"), "email": format!("hostile-{n}@bench.example"),
            "first_name": "Bench", "last_name": "Person", "state": "active",
            "created_at": at, "updated_at": at
        }
    })
    .to_string()
    .into_bytes()
}

async fn run_phase(
    base: &str,
    name: &'static str,
    forgery: Option<Forgery>,
    seconds: u64,
    rate: u64,
    attackers: usize,
    first: u64,
) -> Phase {
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let refused_other = Arc::new(Mutex::new(0usize));
    let mut attacks = Vec::new();
    if let Some(forgery) = forgery {
        let body = vec![b'x'; 1024 * 1024 - 64];
        for _ in 0..attackers {
            let (client, stop, refusals, other) = (
                client.clone(),
                stop.clone(),
                refusals.clone(),
                refused_other.clone(),
            );
            let (url, body) = (format!("{base}/webhooks/workos"), body.clone());
            attacks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let answer = client
                        .post(&url)
                        .header("WorkOS-Signature", forgery.header())
                        .body(body.clone())
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status() == 401 => refusals.lock().unwrap().push(sent.elapsed()),
                        // A connection closed before the whole body was sent is refused too.
                        _ => *other.lock().unwrap() += 1,
                    }
                }
            }));
        }
    }
    let acks = Arc::new(Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    let started = Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let total = seconds * rate;
    for n in 0..total {
        let due = started + every * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, acks) = (client.clone(), acks.clone());
        let url = format!("{base}/webhooks/workos");
        senders.push(tokio::spawn(async move {
            let body = valid_body(first + n);
            let header = signature::sign(SECRET, signature::now_ms(), &body);
            let took = support::post_signed(&client, &url, body, header).await;
            acks.lock().unwrap().push(took);
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for attack in attacks {
        attack.await.unwrap();
    }
    let mut acks = acks.lock().unwrap().clone();
    let mut refusals = refusals.lock().unwrap().clone();
    acks.sort();
    refusals.sort();
    let refused_other = *refused_other.lock().unwrap();
    Phase {
        name,
        acks,
        refusals,
        refused_other,
    }
}

fn main() {
    let seconds = env_or("BENCH_HOSTILE_SECS", if measuring() { 10 } else { 1 }) as u64;
    let rate = env_or("BENCH_HOSTILE_RATE", if measuring() { 200 } else { 20 }) as u64;
    let attackers = env_or("BENCH_ATTACKERS", if measuring() { 4 } else { 1 });
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite".into());
    println!(
        "\nWebhooks during a forged flood: {rate} valid webhooks/s, {attackers} attackers sending 1 MiB \
         forged requests back to back, {seconds} s per phase\n"
    );
    println!("| backend | phase | valid acks | ack p50 ms | ack p99 ms | ack max ms | forged requests refused | refusal p50 ms | p99 ms | max ms | closed early |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for backend in backends.split(',').map(str::trim) {
        let scratch = scratch(backend);
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let _service = spawn(
            &["serve"],
            &[
                ("DATABASE_URL", database_url(&scratch.target)),
                ("ROLLCALL_BIND", format!("127.0.0.1:{port}")),
                ("ROLLCALL_OPERATOR_TOKEN", OPERATOR.to_string()),
                ("WORKOS_WEBHOOK_SECRETS", SECRET.to_string()),
            ],
        );
        let rt = runtime();
        let phases = rt.block_on(async {
            let client = reqwest::Client::new();
            wait_until_up(&client, &format!("{base}/healthz")).await;
            synced_workspace(&client, &base, ORGANIZATION).await;
            let mut phases = Vec::new();
            let plan = [
                ("quiet", None),
                ("many signatures", Some(Forgery::ManySignatures)),
                ("wrong signature", Some(Forgery::WrongSignature)),
            ];
            for (i, (name, forgery)) in plan.into_iter().enumerate() {
                let first = i as u64 * 1_000_000;
                phases.push(run_phase(&base, name, forgery, seconds, rate, attackers, first).await);
            }
            phases
        });
        for p in phases {
            let ms = |d: &[Duration], q| percentile_ms(d, q);
            let max = |d: &[Duration]| d.last().map_or(f64::NAN, |m| m.as_secs_f64() * 1000.0);
            println!(
                "| {backend} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {} |",
                p.name,
                p.acks.len(),
                ms(&p.acks, 0.5),
                ms(&p.acks, 0.99),
                max(&p.acks),
                p.refusals.len(),
                ms(&p.refusals, 0.5),
                ms(&p.refusals, 0.99),
                max(&p.refusals),
                p.refused_other,
            );
        }
    }
}
