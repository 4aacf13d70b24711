//! A webhook receiver on port 0 that checks each delivery's signature and records it.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rollcall::workos::signature;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: Value,
    pub verified: bool,
}

struct State {
    secret: rollcall::secret::SecretString,
    /// How many of the first requests to answer 500.
    fail_first: u32,
    requests: AtomicU32,
    received: Mutex<Vec<Received>>,
}

/// A running receiver.
pub struct Receiver {
    pub url: String,
    state: Arc<State>,
    server: actix_web::dev::ServerHandle,
}

async fn receive(request: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    if n < state.fail_first {
        return HttpResponse::InternalServerError().finish();
    }
    let header = request
        .headers()
        .get("WorkOS-Signature")
        .and_then(|h| h.to_str().ok());
    let verified = signature::verify(
        header,
        &body,
        std::slice::from_ref(&state.secret),
        signature::now_ms(),
        signature::DEFAULT_TOLERANCE,
    )
    .is_ok();
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state
        .received
        .lock()
        .unwrap()
        .push(Received { event, verified });
    if verified {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::Unauthorized().finish()
    }
}

impl Receiver {
    /// Starts a receiver that accepts events signed with `secret`, after refusing the first `fail_first`.
    pub fn start(secret: &str, fail_first: u32) -> Receiver {
        let state = Arc::new(State {
            secret: secret.into(),
            fail_first,
            requests: AtomicU32::new(0),
            received: Mutex::new(Vec::new()),
        });
        let data = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/webhooks/workos", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/webhooks/workos", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url,
            state,
            server: handle,
        }
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// How many requests arrived, refused ones included.
    pub fn requests(&self) -> u32 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// How many times each event id arrived.
    pub fn counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.received() {
            *counts
                .entry(r.event["id"].as_str().unwrap_or("").to_string())
                .or_insert(0) += 1;
        }
        counts
    }

    /// Waits until `n` events arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} events arrived",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}
