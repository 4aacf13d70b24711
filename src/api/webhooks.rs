//! `POST /webhooks/workos`: verify the signature over the raw bytes, store durably, then answer.

use super::error::ApiError;
use super::route::Route;
use crate::db::models::NewWebhookEvent;
use crate::intake::event_store::{StoreError, Stored};
use crate::state::AppState;
use crate::workos::events::Event;
use crate::workos::signature::{self, SignatureError};
use crate::workos::timestamp;
use actix_web::body::{BodySize, MessageBody};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;
use std::pin::Pin;
use std::task::{Context, Poll};
use utoipa::ToSchema;

pub fn routes() -> Vec<Route> {
    Route::of::<__path_receive_webhook>(|| web::to(receive_webhook))
}

/// A stored delivery.
#[derive(Serialize, ToSchema)]
pub struct WebhookReceipt {
    /// The event's id.
    #[schema(value_type = String)]
    received: Option<String>,
    /// True when the event was stored before: acknowledged, its body not stored again.
    redelivery: bool,
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("request bodies are limited to {limit} bytes"),
    )
}

fn too_slow(timeout: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        format!(
            "the body did not arrive within {} (ROLLCALL_WEBHOOK_BODY_TIMEOUT)",
            humantime::format_duration(timeout)
        ),
    )
}

/// The answer to a refused request, holding the request's body (which may not have been read to its end)
/// until the answer is sent: the connection is then closed, instead of being drained of the rest of a
/// chunked body for as long as the client goes on sending it.
struct ClosingAnswer<B> {
    answer: B,
    _request_body: web::Payload,
}

impl<B: MessageBody + Unpin> MessageBody for ClosingAnswer<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.answer.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().answer).poll_next(cx)
    }
}

/// Reads the body up to `limit` bytes, all of it by `deadline`. The buffer grows with the bytes that
/// arrive, never from what `Content-Length` promises: a client that declares 1 MiB and sends a byte now
/// and then holds a few bytes, and only until the deadline.
pub(super) async fn read_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
    deadline: tokio::time::Instant,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut body = Vec::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, payload.next()).await {
            Err(_) => return Err(too_slow(timeout)),
            Ok(None) => return Ok(body),
            Ok(Some(chunk)) => chunk,
        };
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("invalid_payload", format!("could not read the body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
}

/// Receive a signed broker event
///
/// Verifies `WorkOS-Signature` over the raw body, stores the delivery durably, then answers. The body must
/// arrive in full within `ROLLCALL_WEBHOOK_BODY_TIMEOUT` (408 otherwise). A signed body that is not an
/// event is stored as `invalid` and answered 400 (the same body again is answered 400 and counted on the
/// stored delivery, not stored again). A verified delivery wakes the Events API tail; with
/// `ROLLCALL_EVENT_SOURCE=events` that is all it does (the tail brings the event).
#[utoipa::path(post, path = "/webhooks/workos", tag = "webhooks",
    params(("WorkOS-Signature" = String, Header, description = "`t=<milliseconds>, v1=<hex HMAC-SHA256 of \"t.body\">`.")),
    request_body(content = Object, description = "Any JSON; a `dsync.*` event to be applied."),
    responses(
        (status = 200, description = "Stored (whether applied, duplicate, skipped or of an unknown type).", body = WebhookReceipt),
        (status = 400, extensions(("x-problem-codes" = json!(["invalid_payload"])))),
        (status = 401, extensions(("x-problem-codes" = json!(["invalid_signature"])))),
        (status = 408, extensions(("x-problem-codes" = json!(["body_timeout"])))),
        (status = 413, extensions(("x-problem-codes" = json!(["payload_too_large"])))),
        (status = 503, extensions(("x-problem-codes" = json!(["database_unavailable"])))),
    ),
)]
pub(crate) async fn receive_webhook(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let answer = receive(req, &mut payload, &state).await;
    let outcome = match &answer {
        Ok(_) => "accepted",
        Err(e) if e.status == StatusCode::UNAUTHORIZED => "unauthorized",
        Err(e) if e.status == StatusCode::REQUEST_TIMEOUT => "timeout",
        Err(e) if e.status == StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        Err(_) => "bad_request",
    };
    state.metrics.webhook_received(outcome, started.elapsed());
    answer.or_else(|refused| {
        let response = actix_web::ResponseError::error_response(&refused);
        Ok(response
            .map_body(|_, answer| ClosingAnswer {
                answer,
                _request_body: payload,
            })
            .map_into_boxed_body())
    })
}

/// Bodies up to this size are verified on the request's own thread (hashing a few KiB takes microseconds,
/// less than a hop to another thread); larger ones on the blocking pool, so a flood of large forged
/// bodies cannot stall the async workers that serve every other request.
const VERIFIED_IN_PLACE: usize = 64 * 1024;

/// A refused signature as the broker hears it: 401, with why.
fn unauthorized(why: SignatureError) -> ApiError {
    match why {
        SignatureError::NoSecretConfigured => {
            tracing::warn!(
                "webhook refused: WORKOS_WEBHOOK_SECRETS is not set, so nothing can be verified"
            )
        }
        _ => tracing::info!(reason = %why, "webhook refused"),
    }
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        why.to_string(),
    )
}

async fn receive(
    req: HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings;
    let deadline = tokio::time::Instant::now() + settings.webhook_body_timeout;
    // The header is checked before the body is read: a malformed, stale or oversized one costs nothing.
    let header = req
        .headers()
        .get("workos-signature")
        .map(|v| v.to_str().unwrap_or(""));
    let checked = signature::check_header(
        header,
        &settings.webhook_secrets,
        signature::now_ms(),
        settings.webhook_tolerance,
    )
    .map_err(unauthorized)?;
    let body = read_body(
        &req,
        payload,
        settings.webhook_body_limit,
        deadline,
        settings.webhook_body_timeout,
    )
    .await?;
    let secrets = settings.webhook_secrets.clone();
    let verify = move |body: Vec<u8>| checked.verify_body(&body, &secrets).map(|()| body);
    let body = if body.len() <= VERIFIED_IN_PLACE {
        verify(body)
    } else {
        web::block(move || verify(body))
            .await
            .map_err(|_| ApiError::unavailable())?
    }
    .map_err(unauthorized)?;
    // A verified webhook says the broker has news: the Events API tail (when it runs) reads now.
    state.event_tail.wake();
    let received_at = timestamp::now();
    let parsed = Event::parse(&body);
    if let (Ok(event), false) = (&parsed, settings.stores_webhooks()) {
        // ROLLCALL_EVENT_SOURCE=events: the tail brings this event in order; its body is not stored.
        return Ok(HttpResponse::Ok().json(WebhookReceipt {
            received: Some(event.id.clone()),
            redelivery: false,
        }));
    }
    let (row, invalid) = match parsed {
        Ok(event) => (NewWebhookEvent::received(&event, body, received_at), None),
        Err(why) => (
            NewWebhookEvent::invalid(body, why.0.clone(), received_at),
            Some(why),
        ),
    };
    let event_id = row.event_id.clone();
    let stored = state.event_store.store(row).await.map_err(|e| match e {
        StoreError::Database(_) | StoreError::ShuttingDown => ApiError::unavailable(),
    })?;
    if let Some(why) = invalid {
        match stored {
            Stored::New => {
                tracing::warn!(reason = %why, "signed webhook is not an event; stored as invalid")
            }
            Stored::Redelivery => tracing::debug!(
                reason = %why,
                "signed webhook is not an event, and was stored before; counted, not stored again"
            ),
        }
        return Err(ApiError::bad_request("invalid_payload", why.0));
    }
    let redelivery = stored == Stored::Redelivery;
    if redelivery {
        tracing::debug!(event = ?event_id, "redelivery of a stored event acknowledged; not stored again");
    }
    Ok(HttpResponse::Ok().json(WebhookReceipt {
        received: event_id,
        redelivery,
    }))
}
