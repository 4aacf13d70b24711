//! The admin REST API (SPEC §4), the health endpoints and the webhook route.
//!
//! This file only lists the handlers' modules and serves their routes: nothing here is imported by
//! them, so imports inside `api/` point one way.

pub mod audit_log;
pub mod auth;
pub mod blocking;
pub mod caller;
pub mod changes;
pub mod directory_groups;
pub mod error;
pub mod event_tail;
pub mod events;
pub mod health;
pub mod members;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod params;
pub mod role_mappings;
pub mod route;
pub mod scim;
pub mod scim_directories;
pub mod sync_runs;
pub mod teams;
pub mod webhook_endpoints;
pub mod webhooks;
pub mod workspaces;

use actix_web::{web, HttpRequest, HttpResponse};
use error::{ApiError, ApiResult};
pub use route::resource;
use route::Route;

/// Refuses a path or query string holding a NUL byte, which no stored text can hold.
pub async fn reject_nul(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if req.uri().to_string().to_ascii_lowercase().contains("%00") {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "the path or query holds a NUL character",
        )
        .into());
    }
    next.call(req).await
}

/// Every route the service answers.
pub fn routes() -> Vec<Route> {
    [
        health::routes(),
        metrics::routes(),
        webhooks::routes(),
        caller::routes(),
        workspaces::routes(),
        members::routes(),
        events::routes(),
        event_tail::routes(),
        teams::routes(),
        directory_groups::routes(),
        role_mappings::routes(),
        audit_log::routes(),
        changes::routes(),
        webhook_endpoints::routes(),
        scim_directories::routes(),
        sync_runs::routes(),
        openapi::routes(),
    ]
    .concat()
}

/// Registers every route; the methods a path does not take answer 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(256 * 1024)
            .error_handler(|e, _| ApiError::invalid_body(e.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::bad_request("invalid_parameter", e.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::bad_request("invalid_parameter", e.to_string()).into()),
    );
    let mut paths: Vec<(String, Vec<Route>)> = Vec::new();
    for route in routes() {
        match paths.iter_mut().find(|(path, _)| *path == route.path) {
            Some((_, same_path)) => same_path.push(route),
            None => paths.push((route.path.clone(), vec![route])),
        }
    }
    for (path, routes) in paths {
        let served = routes.into_iter().fold(resource(&path), |served, route| {
            served.route((route.handler)().method(route.method))
        });
        cfg.service(served);
    }
    scim::configure(cfg);
}

/// The answer for paths that do not exist.
pub async fn not_found(_req: HttpRequest) -> ApiResult<HttpResponse> {
    Err(ApiError::not_found("path"))
}
