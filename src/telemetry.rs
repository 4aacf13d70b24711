//! Log output: human-readable text or one JSON object per line, filtered by `RUST_LOG`; and the span of
//! each HTTP request.
//!
//! Every request runs in a `request` span (through `tracing-actix-web`'s `TracingLogger`) that carries a
//! request id, so everything logged while answering it (a webhook's delivery stored, with its `event_id`)
//! names the request. Applying a delivery runs in a span naming its `event_id` and `directory_id`, a pull
//! in one naming its run and directory, and storing a page of the Events API tail in one naming its cursor:
//! with `RUST_LOG=info,rollcall::intake=debug` a delivery can be followed from the request that brought it
//! to the batch that applied it.

use crate::config::LogFormat;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::HttpMessage;
use std::time::Instant;
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; later calls are ignored.
pub fn init(format: LogFormat) {
    init_with_default(format, "info")
}

/// As [`init`], with `default` as the filter when `RUST_LOG` is not set.
pub fn init_with_default(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The span of an HTTP request and the line logged when it has been answered (target `rollcall::http`):
/// for `tracing_actix_web::TracingLogger::<RequestSpan>`. Only the path is recorded, never the query.
pub struct RequestSpan;

/// When a request began, kept in its extensions until it is answered.
#[derive(Clone, Copy)]
struct Began(Instant);

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request.extensions().get::<RequestId>().copied();
        request.extensions_mut().insert(Began(Instant::now()));
        tracing::info_span!(
            target: "rollcall::http",
            "request",
            request_id = request_id.map(tracing::field::display),
            method = %request.method(),
            path = %request.path(),
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let _entered = span.enter();
        match outcome {
            Ok(response) => {
                let took_ms = response
                    .request()
                    .extensions()
                    .get::<Began>()
                    .map(|began| began.0.elapsed().as_secs_f64() * 1000.0);
                let status = response.status().as_u16();
                match response.response().error() {
                    Some(error) if response.status().is_server_error() => {
                        tracing::warn!(target: "rollcall::http", status, took_ms, %error, "answered")
                    }
                    _ => tracing::info!(target: "rollcall::http", status, took_ms, "answered"),
                }
            }
            Err(error) => {
                let status = error.as_response_error().status_code().as_u16();
                tracing::warn!(target: "rollcall::http", status, %error, "the request failed")
            }
        }
    }
}
