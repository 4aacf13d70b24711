//! The admin REST API (SPEC §4), the health endpoints and the webhook route.

pub mod audit_log;
pub mod auth;
pub mod caller;
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
pub mod sync_runs;
pub mod teams;
pub mod webhooks;
pub mod workspaces;

use crate::config::Settings;
use crate::db::{Database, DbConnection};
use crate::intake::applier::{ApplierHealth, Wakeup};
use crate::intake::event_store::EventStore;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use error::{ApiError, ApiResult};
use std::sync::Arc;
use utoipa::openapi::HttpMethod;

/// What every handler can reach.
pub struct AppState {
    pub db: Database,
    pub settings: Arc<Settings>,
    pub event_store: EventStore,
    pub applier_wakeup: Wakeup,
    /// Whether the applier runs (`/readyz` and `/metrics` say so).
    pub applier: ApplierHealth,
    /// Full pulls; none when `WORKOS_API_KEY` is not set.
    pub sync_runner: Option<crate::sync_runs::SyncRunner>,
    /// What `/metrics` reports.
    pub metrics: crate::metrics::Metrics,
    /// When each token's `last_used_at` was last written.
    pub token_use: auth::TokenUse,
    /// The Events API tail of this process (verified webhooks wake it).
    pub event_tail: crate::event_tail::EventTail,
}

impl AppState {
    /// Runs `work` in one write transaction of the workspace (holding its lock, see
    /// [`Database::write_workspace`]) off the async workers.
    pub async fn write_workspace<T: Send + 'static>(
        &self,
        workspace_id: String,
        work: impl FnOnce(&mut DbConnection) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let db = self.db.clone();
        web::block(move || db.write_workspace(&workspace_id, work)).await?
    }

    /// Runs a write of the workspace made of steps (see [`Database::write_workspace_in_steps`]) off the
    /// async workers.
    pub async fn write_workspace_in_steps<T: Send + 'static>(
        &self,
        workspace_id: String,
        step: impl FnMut(&mut DbConnection, usize) -> ApiResult<Option<T>> + Send + 'static,
    ) -> ApiResult<T> {
        let db = self.db.clone();
        web::block(move || db.write_workspace_in_steps(&workspace_id, step)).await?
    }

    /// Runs `work` in one write transaction that changes no workspace's members, teams, links, mappings
    /// or directories (a token, a delivery's status, a new workspace), off the async workers.
    pub async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let db = self.db.clone();
        web::block(move || db.write(work)).await?
    }

    /// Runs `work` in a read-only transaction (one snapshot, no lock) off the async workers.
    pub async fn read_only<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let db = self.db.clone();
        web::block(move || db.read_only(work)).await?
    }

    /// Runs `work` on a connection off the async workers.
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let db = self.db.clone();
        web::block(move || db.read(work)).await?
    }
}

/// A name as admins give it: trimmed, 1 to 200 characters, no control characters.
pub fn check_name(name: &str) -> ApiResult<String> {
    crate::tokens::check_name(name).map_err(|why| ApiError::bad_request("invalid_field", why))
}

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

/// A route whose other methods answer 405.
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::method_not_allowed())
    }))
}

/// A served route: the method and path of its handler's `#[utoipa::path]`, and what answers it.
///
/// The app is built from [`routes`] and the OpenAPI document from the same attributes, so a route
/// cannot be served under another path or method than the one it is documented with.
#[derive(Clone)]
pub struct Route {
    pub method: Method,
    pub path: String,
    /// The handler that answers it.
    handler: fn() -> actix_web::Route,
}

impl Route {
    /// The route documented by `P` (a handler's `__path_…`), answered by `handler`.
    pub fn of<P: utoipa::Path>(handler: fn() -> actix_web::Route) -> Vec<Route> {
        P::methods()
            .into_iter()
            .map(|method| Route {
                method: http_method(method),
                path: P::path(),
                handler,
            })
            .collect()
    }
}

fn http_method(method: HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
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
}

/// The answer for paths that do not exist.
pub async fn not_found(_req: HttpRequest) -> ApiResult<HttpResponse> {
    Err(ApiError::not_found("path"))
}
