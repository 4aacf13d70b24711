//! Webhooks beside slow uploads: `rollcall serve` (its own process) receives signed webhooks at a steady
//! rate while BENCH_SLOW_UPLOADS (1,000) raw connections each send a webhook's headers (a well-formed
//! signature of now, `Content-Length: 1048576`) and then one byte of the body every BENCH_SLOW_EVERY_MS
//! (2,000) milliseconds. The service cuts each off at `ROLLCALL_WEBHOOK_BODY_TIMEOUT` (BENCH_BODY_TIMEOUT,
//! default its own 10s) and the uploader connects again at once, so that as many are open all the time.
//! Reports the valid webhooks' acknowledgement times and the service's memory (VmRSS, and VmSize, the
//! address space it reserved, sampled every 250 ms), first quiet, then beside the slow uploads.
//!
//! `cargo bench --bench slow_clients` (env: BENCH_SLOW_UPLOADS, BENCH_SLOW_EVERY_MS, BENCH_SLOW_SECS
//! (30 s beside the uploads, 10 s quiet), BENCH_SLOW_RATE (20 valid webhooks/s), BENCH_BODY_TIMEOUT,
//! BENCH_BACKENDS (default `sqlite`)). Each upload is a socket in this process and one in the service:
//! `ulimit -n` must allow both (2,000 and some). Under `cargo test --all-targets` it runs a short smoke
//! pass instead, so it cannot rot.

mod support;

use rollcall::workos::signature;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    database_url, env_or, free_port, measuring, percentile_ms, runtime, scratch, spawn,
    synced_workspace, wait_until_up, Process, OPERATOR, SECRET,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ORGANIZATION: &str = "org_slow_clients";

/// What the slow uploaders saw.
#[derive(Default)]
struct Uploads {
    /// Connections with their headers sent and no answer yet.
    open: AtomicUsize,
    /// Connections made.
    connected: AtomicUsize,
    /// Answers 408 `body_timeout`.
    cut_off: AtomicUsize,
    /// Other answers, and connections closed without one.
    other: AtomicUsize,
    stop: AtomicBool,
}

/// What one phase measured.
struct Phase {
    name: &'static str,
    /// The fewest and the most slow uploads open at a sample.
    open: (usize, usize),
    acks: Vec<Duration>,
    not_ok: usize,
    rss_max_mib: f64,
    rss_end_mib: f64,
    virtual_max_mib: f64,
}

fn valid_body(n: u64) -> Vec<u8> {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "object": "event", "id": format!("event_slow_{n:09}"), "event": "dsync.user.created",
        "created_at": at,
        "data": {
            "object": "directory_user", "id": format!("directory_user_slow_{n}"),
            "directory_id": "directory_slow", "organization_id": ORGANIZATION,
            "idp_id": format!("idp-{n}"), "email": format!("slow-{n}@bench.example"),
            "first_name": "Bench", "last_name": "Person", "state": "active",
            "created_at": at, "updated_at": at
        }
    })
    .to_string()
    .into_bytes()
}

/// One slow uploader: connects, sends the headers and then a byte every `every` until the service
/// answers or closes, and starts over, until told to stop.
async fn slow_uploader(address: String, every: Duration, uploads: Arc<Uploads>) {
    let mut buffer = [0u8; 1024];
    while !uploads.stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = TcpStream::connect(&address).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        uploads.connected.fetch_add(1, Ordering::Relaxed);
        let head = format!(
            "POST /webhooks/workos HTTP/1.1\r\nHost: rollcall\r\nContent-Type: application/json\r\n\
             WorkOS-Signature: t={}, v1={}\r\nContent-Length: 1048576\r\n\r\n{{",
            signature::now_ms(),
            "ab".repeat(32)
        );
        if stream.write_all(head.as_bytes()).await.is_err() {
            uploads.other.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        uploads.open.fetch_add(1, Ordering::Relaxed);
        // Until the service answers (the first bytes of its answer are enough) or closes; then the
        // uploader hangs up and starts over.
        let mut answer = Vec::new();
        while !uploads.stop.load(Ordering::Relaxed) {
            tokio::select! {
                read = stream.read(&mut buffer) => {
                    if let Ok(n) = read {
                        answer.extend_from_slice(&buffer[..n]);
                    }
                    break;
                },
                _ = tokio::time::sleep(every) => {
                    if stream.write_all(b" ").await.is_err() {
                        break;
                    }
                }
            }
        }
        uploads.open.fetch_sub(1, Ordering::Relaxed);
        if uploads.stop.load(Ordering::Relaxed) {
            return;
        }
        let answer = String::from_utf8_lossy(&answer);
        if answer.starts_with("HTTP/1.1 408") && answer.contains("body_timeout") {
            uploads.cut_off.fetch_add(1, Ordering::Relaxed);
        } else {
            uploads.other.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends `rate` valid webhooks a second for `seconds` while sampling the service's memory.
async fn run_phase(
    base: &str,
    name: &'static str,
    service: &Process,
    uploads: &Uploads,
    seconds: u64,
    rate: u64,
    first: u64,
) -> Phase {
    let mut open = (usize::MAX, 0);
    let client = reqwest::Client::new();
    let acks = Arc::new(Mutex::new(Vec::new()));
    let not_ok = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    let started = Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let mut rss_max_mib: f64 = service.rss_mib();
    let mut virtual_max_mib: f64 = service.virtual_mib();
    let mut next_sample = started;
    for n in 0..seconds * rate {
        let due = started + every * n as u32;
        while next_sample < due {
            tokio::time::sleep_until(next_sample.into()).await;
            rss_max_mib = rss_max_mib.max(service.rss_mib());
            virtual_max_mib = virtual_max_mib.max(service.virtual_mib());
            let now_open = uploads.open.load(Ordering::Relaxed);
            open = (open.0.min(now_open), open.1.max(now_open));
            next_sample += Duration::from_millis(250);
        }
        tokio::time::sleep_until(due.into()).await;
        let (client, acks, not_ok) = (client.clone(), acks.clone(), not_ok.clone());
        let url = format!("{base}/webhooks/workos");
        senders.push(tokio::spawn(async move {
            let body = valid_body(first + n);
            let header = signature::sign(SECRET, signature::now_ms(), &body);
            let sent = Instant::now();
            let answer = client
                .post(&url)
                .header("content-type", "application/json")
                .header("WorkOS-Signature", header)
                .body(body)
                .send()
                .await;
            match answer {
                Ok(response) if response.status() == 200 => {
                    acks.lock().unwrap().push(sent.elapsed())
                }
                _ => {
                    not_ok.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let rss_end_mib = service.rss_mib();
    let mut acks = acks.lock().unwrap().clone();
    acks.sort();
    Phase {
        name,
        open,
        acks,
        not_ok: not_ok.load(Ordering::Relaxed),
        rss_max_mib: rss_max_mib.max(rss_end_mib),
        rss_end_mib,
        virtual_max_mib,
    }
}

fn main() {
    let slow = env_or("BENCH_SLOW_UPLOADS", if measuring() { 1000 } else { 20 });
    let every = Duration::from_millis(env_or("BENCH_SLOW_EVERY_MS", 2000) as u64);
    let seconds = env_or("BENCH_SLOW_SECS", if measuring() { 30 } else { 3 }) as u64;
    let rate = env_or("BENCH_SLOW_RATE", 20) as u64;
    let body_timeout = std::env::var("BENCH_BODY_TIMEOUT")
        .unwrap_or_else(|_| if measuring() { "10s" } else { "1s" }.into());
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "sqlite".into());
    println!(
        "\nWebhooks beside slow uploads: {slow} connections each sending a byte every {} ms of a \
         declared 1 MiB body (cut off after {body_timeout}, then connecting again); {rate} valid \
         webhooks/s for {seconds} s (quiet: {} s)\n",
        every.as_millis(),
        seconds.div_ceil(3),
    );
    println!("| backend | phase | slow uploads open (min–max) | valid webhooks | not 200 | ack p50 ms | ack p99 ms | ack max ms | service RSS max MiB | RSS at end MiB | VmSize max MiB |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for backend in backends.split(',').map(str::trim) {
        let scratch = scratch(backend);
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let service = spawn(
            &["serve"],
            &[
                ("DATABASE_URL", database_url(&scratch.target)),
                ("ROLLCALL_BIND", format!("127.0.0.1:{port}")),
                ("ROLLCALL_OPERATOR_TOKEN", OPERATOR.to_string()),
                ("WORKOS_WEBHOOK_SECRETS", SECRET.to_string()),
                ("ROLLCALL_WEBHOOK_BODY_TIMEOUT", body_timeout.clone()),
            ],
        );
        let rt = runtime();
        let uploads = Arc::new(Uploads::default());
        let (phases, peak) = rt.block_on(async {
            let client = reqwest::Client::new();
            wait_until_up(&client, &format!("{base}/healthz")).await;
            synced_workspace(&client, &base, ORGANIZATION).await;
            let quiet = run_phase(
                &base,
                "quiet",
                &service,
                &uploads,
                seconds.div_ceil(3),
                rate,
                0,
            )
            .await;
            let mut tasks = Vec::new();
            for i in 0..slow {
                let (address, uploads) = (format!("127.0.0.1:{port}"), uploads.clone());
                tasks.push(tokio::spawn(async move {
                    // Spread over two seconds, so that neither the listen queue nor the bytes come at
                    // once.
                    tokio::time::sleep(Duration::from_millis((i * 2000 / slow.max(1)) as u64))
                        .await;
                    slow_uploader(address, every, uploads).await
                }));
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while uploads.open.load(Ordering::Relaxed) < slow && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let busy = run_phase(
                &base,
                "slow uploads",
                &service,
                &uploads,
                seconds,
                rate,
                1_000_000,
            )
            .await;
            uploads.stop.store(true, Ordering::Relaxed);
            for task in tasks {
                task.abort();
            }
            (vec![quiet, busy], service.peak_mib())
        });
        for p in &phases {
            let ms = |q| percentile_ms(&p.acks, q);
            let max = p.acks.last().map_or(f64::NAN, |m| m.as_secs_f64() * 1000.0);
            println!(
                "| {backend} | {} | {}–{} | {} | {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} |",
                p.name,
                p.open.0,
                p.open.1,
                p.acks.len(),
                p.not_ok,
                ms(0.5),
                ms(0.99),
                max,
                p.rss_max_mib,
                p.rss_end_mib,
                p.virtual_max_mib,
            );
        }
        println!(
            "\n{backend}: {} connections made by the slow uploaders, {} cut off with 408 body_timeout, \
             {} ended otherwise; the service's peak memory (VmHWM) {peak:.0} MiB\n",
            uploads.connected.load(Ordering::Relaxed),
            uploads.cut_off.load(Ordering::Relaxed),
            uploads.other.load(Ordering::Relaxed),
        );
    }
}
