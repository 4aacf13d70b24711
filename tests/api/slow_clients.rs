//! Clients that send a webhook's body slowly hold neither a connection nor memory for long: the body has
//! `ROLLCALL_WEBHOOK_BODY_TIMEOUT` to arrive in full, and other webhooks are acknowledged meanwhile.

use crate::broker::{at, event};
use crate::helpers::{spawn_app_with, Backend, TestApp};
use reqwest::{Method, StatusCode};
use rollcall::metrics::sample_value;
use rollcall::workos::signature;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for a valid webhook to be acknowledged under a loaded test run before it runs out.
const BODY_TIMEOUT: Duration = Duration::from_secs(3);

crate::on_both_backends!(
    backend: a_slow_body_is_cut_off_while_other_webhooks_are_acknowledged
);

/// What a slow upload heard back, and when.
struct Cutoff {
    answer: String,
    after: Duration,
}

/// Sends a webhook whose headers promise 1 MiB (or a chunked body) and whose body comes a byte every
/// 100 ms, until the service answers; returns the answer once the service has closed the connection.
async fn slow_upload(app: &TestApp, chunked: bool) -> Cutoff {
    let started = Instant::now();
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    // A well-formed signature of now: only the body can prove it wrong, so the service waits for it.
    let signature = format!("t={}, v1={}", signature::now_ms(), "ab".repeat(32));
    let framing = if chunked {
        "Transfer-Encoding: chunked"
    } else {
        "Content-Length: 1048576"
    };
    let head = format!(
        "POST /webhooks/workos HTTP/1.1\r\nHost: rollcall\r\nContent-Type: application/json\r\n\
         WorkOS-Signature: {signature}\r\n{framing}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let piece: &[u8] = if chunked { b"1\r\nx\r\n" } else { b"x" };
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        assert!(
            started.elapsed() < BODY_TIMEOUT + Duration::from_secs(20),
            "the connection is still open: {}",
            String::from_utf8_lossy(&answer)
        );
        // Once the answer has begun, the client only listens, so that nothing it sends is left unread
        // when the service closes the connection.
        if answer.is_empty() {
            let _ = stream.write_all(piece).await;
        }
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
        }
    }
    Cutoff {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        after: started.elapsed(),
    }
}

async fn a_slow_body_is_cut_off_while_other_webhooks_are_acknowledged(backend: Backend) {
    let app = std::sync::Arc::new(
        spawn_app_with(backend, |s| s.webhook_body_timeout = BODY_TIMEOUT).await,
    );
    let uploads: Vec<_> = [false, true]
        .into_iter()
        .map(|chunked| {
            let app = app.clone();
            tokio::spawn(async move { slow_upload(&app, chunked).await })
        })
        .collect();
    // Meanwhile, a valid webhook is acknowledged: before the slow uploads are cut off.
    let valid = event("dsync.token.created", serde_json::json!({}), &at(1)).to_string();
    let response = app.post_webhook(valid.as_bytes()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        uploads.iter().all(|upload| !upload.is_finished()),
        "a slow upload ended before the valid webhook was acknowledged"
    );
    for upload in uploads {
        let cutoff = upload.await.unwrap();
        assert!(
            cutoff.answer.starts_with("HTTP/1.1 408"),
            "{}",
            cutoff.answer
        );
        assert!(cutoff.answer.contains("body_timeout"), "{}", cutoff.answer);
        // Cut off at the deadline, and the connection closed soon after.
        assert!(
            cutoff.after >= BODY_TIMEOUT && cutoff.after < BODY_TIMEOUT + Duration::from_secs(10),
            "{:?}",
            cutoff.after
        );
    }
    // Only the valid webhook is stored.
    let (status, stored) = app.op(Method::GET, "/api/v1/events", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["data"].as_array().unwrap().len(), 1, "{stored}");
    let timeouts = sample_value(
        &app.scrape().await,
        "rollcall_webhooks_received_total{outcome=\"timeout\"}",
    );
    assert_eq!(timeouts, Some(2.0));
}
