//! The broker's pull API: directories, directory users and directory groups, with its auth, errors,
//! cursors, rate limit and injected failures.

use super::model::{GroupScope, ModelError, Order, PageQuery, UserScope};
use super::shared::Shared;
use crate::secret::ExposeSecret;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures_util::future::LocalBoxFuture;
use rand::Rng;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

type Query = web::Query<HashMap<String, String>>;

/// A pull API error, in the broker's shapes.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{kind} not found: '{id}'.")]
    NotFound { kind: &'static str, id: String },
    #[error("Validation failed")]
    Validation(Vec<(String, String)>),
    #[error("Ratelimited")]
    RateLimited { retry_after: bool },
    #[error("Internal Server Error")]
    Injected,
    #[error("{0}")]
    BadRequest(String),
}

impl From<ModelError> for PullError {
    fn from(error: ModelError) -> Self {
        match error {
            ModelError::NotFound { kind, id } => PullError::NotFound { kind, id },
            ModelError::Invalid { field, message } => {
                PullError::Validation(vec![(field.to_string(), message)])
            }
            ModelError::Conflict(message) => PullError::Validation(vec![("id".into(), message)]),
        }
    }
}

impl ResponseError for PullError {
    fn status_code(&self) -> StatusCode {
        match self {
            PullError::Unauthorized => StatusCode::UNAUTHORIZED,
            PullError::NotFound { .. } => StatusCode::NOT_FOUND,
            PullError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            PullError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            PullError::Injected => StatusCode::INTERNAL_SERVER_ERROR,
            PullError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            PullError::Unauthorized => response.json(json!({ "message": "Unauthorized" })),
            PullError::NotFound { id, .. } => response.json(json!({
                "message": self.to_string(),
                "code": "entity_not_found",
                "entity_id": id,
            })),
            PullError::Validation(errors) => response.json(json!({
                "message": "Validation failed",
                "errors": errors
                    .iter()
                    .map(|(field, code)| json!({ "field": field, "code": code }))
                    .collect::<Vec<_>>(),
            })),
            PullError::RateLimited { retry_after } => {
                if *retry_after {
                    response.insert_header(("Retry-After", "1"));
                }
                response.json("Ratelimited")
            }
            PullError::Injected => response.json(json!({ "message": "Internal Server Error" })),
            PullError::BadRequest(message) => response.json(json!({ "message": message })),
        }
    }
}

/// Routes of the pull API; other methods on them get 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/directories").route(web::get().to(list_directories)))
        .service(web::resource("/directories/{id}").route(web::get().to(get_directory)))
        .service(web::resource("/directory_users").route(web::get().to(list_users)))
        .service(web::resource("/directory_users/{id}").route(web::get().to(get_user)))
        .service(web::resource("/directory_groups").route(web::get().to(list_groups)))
        .service(web::resource("/directory_groups/{id}").route(web::get().to(get_group)));
}

/// Unknown paths.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "message": "Not Found" }))
}

/// The broker's state, for a request that presented the API key as `Authorization: Bearer …`; any
/// other request is refused with 401.
pub(super) struct Authorized(web::Data<Shared>);

impl FromRequest for Authorized {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let shared = web::Data::<Shared>::from_request(request, payload);
        let given = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|v| v.trim().to_string());
        Box::pin(async move {
            let shared = shared.await?;
            if given.is_some_and(|given| same_key(&given, shared.api_key.expose_secret())) {
                Ok(Authorized(shared))
            } else {
                Err(PullError::Unauthorized.into())
            }
        })
    }
}

impl std::ops::Deref for Authorized {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Whether a presented key is the API key, in time that does not depend on where they differ: both are
/// hashed to SHA-256 first, so their lengths do not show either.
fn same_key(given: &str, key: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(key.as_bytes()))
        .into()
}

/// The injected failures every list request may meet.
pub(super) fn injected_faults(shared: &Shared) -> Result<(), PullError> {
    let faults = shared.faults();
    let (too_many, broken) = {
        let mut rng = shared.fault_rng.lock().unwrap_or_else(|e| e.into_inner());
        (
            faults.rate_429 > 0.0 && rng.random_bool(faults.rate_429),
            faults.rate_500 > 0.0 && rng.random_bool(faults.rate_500),
        )
    };
    if too_many {
        let n = shared.injected_429.fetch_add(1, Ordering::Relaxed);
        return Err(PullError::RateLimited {
            retry_after: n.is_multiple_of(2),
        });
    }
    if broken {
        return Err(PullError::Injected);
    }
    Ok(())
}

/// A list's `limit`: 1 to 100, 10 when absent; out of range, an error is added to `errors`.
pub(super) fn page_limit(
    query: &HashMap<String, String>,
    errors: &mut Vec<(String, String)>,
) -> usize {
    match query.get("limit").map(|l| l.trim().parse::<i64>()) {
        None => 10,
        Some(Ok(l)) if (1..=100).contains(&l) => l as usize,
        Some(_) => {
            errors.push((
                "limit".into(),
                "limit must be a number between 1 and 100".into(),
            ));
            10
        }
    }
}

fn page_query(query: &HashMap<String, String>) -> Result<PageQuery, PullError> {
    let mut errors = Vec::new();
    let limit = page_limit(query, &mut errors);
    let order = match query.get("order") {
        None => Order::Desc,
        Some(o) => Order::parse(o).unwrap_or_else(|| {
            errors.push((
                "order".into(),
                "order must be one of asc, desc, normal".into(),
            ));
            Order::Desc
        }),
    };
    if !errors.is_empty() {
        return Err(PullError::Validation(errors));
    }
    let cursor = |name: &str| query.get(name).filter(|c| !c.is_empty()).cloned();
    Ok(PageQuery {
        order,
        after: cursor("after"),
        before: cursor("before"),
        limit,
    })
}

/// The 422 of a list that needs `directory` or `other` and got neither.
fn neither_given(other: &str) -> PullError {
    let code = format!("Please provide either \"directory\" or \"{other}\" parameters.");
    PullError::Validation(vec![
        ("directory".into(), code.clone()),
        (other.into(), code),
    ])
}

fn ok<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok().json(body)
}

fn param<'a>(query: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    query
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

async fn list_directories(shared: Authorized, query: Query) -> Result<HttpResponse, PullError> {
    injected_faults(&shared)?;
    let page = page_query(&query)?;
    let list = shared
        .read()
        .list_directories(param(&query, "organization_id"), &page)?;
    Ok(ok(&list))
}

async fn get_directory(
    shared: Authorized,
    id: web::Path<String>,
) -> Result<HttpResponse, PullError> {
    Ok(ok(&shared.read().get_directory(&id)?))
}

async fn list_users(shared: Authorized, query: Query) -> Result<HttpResponse, PullError> {
    injected_faults(&shared)?;
    let (directory, group) = (param(&query, "directory"), param(&query, "group"));
    if let Some(limit) = shared.faults().rate_limit {
        let key = match (group, directory) {
            (Some(g), _) => shared.read().directory_of_group(g),
            (None, Some(d)) => Some(d.to_string()),
            (None, None) => None,
        };
        if let Some(key) = key {
            if !shared.windows.admit(&key, limit, shared.log.now_ms()) {
                return Err(PullError::RateLimited { retry_after: true });
            }
        }
    }
    let (idp_id, email) = (param(&query, "idp_id"), param(&query, "email"));
    if (idp_id.is_some() || email.is_some()) && directory.is_none() {
        let field = if idp_id.is_some() { "idp_id" } else { "email" };
        return Err(PullError::Validation(vec![(
            field.into(),
            format!("Filtering by {field} requires the \"directory\" parameter."),
        )]));
    }
    let scope = match (group, directory) {
        (Some(g), _) => UserScope::Group(g),
        (None, Some(d)) if idp_id.is_some() || email.is_some() => UserScope::Matching {
            directory: d,
            idp_id,
            email,
        },
        (None, Some(d)) => UserScope::Directory(d),
        (None, None) => return Err(neither_given("group")),
    };
    let page = page_query(&query)?;
    let model = shared.read();
    let mut list = model.list_users(scope, &page, shared.fill_user_groups)?;
    drop(model);
    if let (Some(_), Some(d)) = (group, directory) {
        // Both given: only the group's members in that directory.
        list.data.retain(|u| u.directory_id == d);
    }
    Ok(ok(&list))
}

async fn get_user(shared: Authorized, id: web::Path<String>) -> Result<HttpResponse, PullError> {
    Ok(ok(&shared.read().get_user(&id, shared.fill_user_groups)?))
}

async fn list_groups(shared: Authorized, query: Query) -> Result<HttpResponse, PullError> {
    injected_faults(&shared)?;
    let (directory, user) = (param(&query, "directory"), param(&query, "user"));
    let scope = match (user, directory) {
        (Some(u), _) => GroupScope::User(u),
        (None, Some(d)) => GroupScope::Directory(d),
        (None, None) => return Err(neither_given("user")),
    };
    let page = page_query(&query)?;
    let mut list = shared.read().list_groups(scope, &page)?;
    if let (Some(_), Some(d)) = (user, directory) {
        list.data.retain(|g| g.directory_id == d);
    }
    Ok(ok(&list))
}

async fn get_group(shared: Authorized, id: web::Path<String>) -> Result<HttpResponse, PullError> {
    Ok(ok(&shared.read().get_group(&id)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_key_matches() {
        assert!(same_key("sk_test_dev", "sk_test_dev"));
        assert!(!same_key("sk_test_de", "sk_test_dev"));
        assert!(!same_key("sk_test_dew", "sk_test_dev"));
        assert!(!same_key("", "sk_test_dev"));
    }
}
