//! `/scim/v2/{directory}`: Rollcall's own SCIM 2.0 service provider (RFC 7644), where an identity
//! provider provisions a workspace's SCIM directory with a bearer token of that directory. Answers are
//! `application/scim+json`, errors SCIM error bodies with their `scimType`. Not in the OpenAPI document:
//! SCIM is its own protocol, described by its discovery endpoints.

use super::webhooks::read_body;
use crate::db::DbError;
use crate::scim::directories::{authenticate, record_use};
use crate::scim::discovery::{
    error_body, list_response, resource_types, schemas, service_provider_config, MAX_RESULTS,
};
use crate::scim::filter::{key_of, Filter};
use crate::scim::projection::Projection;
use crate::scim::store::{self, if_match_version, Kind, ScimDirectory, ScimError};
use crate::state::AppState;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

/// Serves the SCIM endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/scim/v2/{directory}")
            .route("/{endpoint}", web::to(collection))
            .route("/{endpoint}/{id:.*}", web::to(single))
            .default_service(web::to(|| async { Err::<HttpResponse, _>(no_endpoint()) })),
    );
}

const CONTENT_TYPE: &str = "application/scim+json";

fn scim_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(CONTENT_TYPE)
        .body(body.to_string())
}

/// A refused SCIM request, answered as a SCIM error body (RFC 7644 §3.12).
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
    /// Extra headers: `WWW-Authenticate`, `Retry-After`.
    headers: Vec<(header::HeaderName, header::HeaderValue)>,
}

impl Refusal {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: header::HeaderName, value: header::HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.detail)
    }
}

impl actix_web::ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut answer = scim_json(
            self.status,
            &error_body(self.status.as_u16(), self.scim_type, &self.detail),
        );
        for (name, value) in &self.headers {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
        answer
    }
}

impl From<ScimError> for Refusal {
    fn from(error: ScimError) -> Self {
        if let ScimError::Db(e) = &error {
            tracing::error!(error = %e, "a SCIM request could not reach the database");
            return Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the database is unavailable; try again",
            );
        }
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Refusal::new(status, error.scim_type(), error.to_string())
    }
}

type Answer = Result<HttpResponse, Refusal>;

fn not_found(detail: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, None, detail)
}

fn no_endpoint() -> Refusal {
    not_found("no such SCIM endpoint")
}

fn method_not_allowed() -> Refusal {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "this SCIM endpoint does not take this method",
    )
}

/// What every SCIM request goes through: the directory's bearer token, then its rate.
async fn admitted(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<ScimDirectory, Refusal> {
    let directory_id = req
        .match_info()
        .get("directory")
        .unwrap_or_default()
        .to_string();
    let secret = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        });
    let unauthorized = || {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a bearer token of this SCIM directory is required",
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        )
    };
    let secret = secret
        .filter(|s| !s.is_empty() && s.len() <= 200)
        .ok_or_else(unauthorized)?;
    let db = state.db.clone();
    let (directory, token_id) = run(move || Ok(authenticate(&db, &directory_id, &secret)?))
        .await?
        .ok_or_else(unauthorized)?;
    if let Err(wait) = state.scim_limiter.check(&directory.directory_id) {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        return Err(Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            None,
            "this SCIM directory is over its request rate (ROLLCALL_SCIM_RATE); retry after the time given",
        )
        .with_header(header::RETRY_AFTER, header::HeaderValue::from(seconds)));
    }
    if state.token_use.due(&token_id, std::time::Instant::now()) {
        let db = state.db.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(error) = record_use(&db, &token_id) {
                tracing::warn!(%error, token = %token_id, "could not record a SCIM token's use");
            }
        });
    }
    Ok(directory)
}

/// The directory's SCIM base URL, as the client reached it.
fn base_url(req: &HttpRequest, directory: &ScimDirectory) -> String {
    let info = req.connection_info();
    format!(
        "{}://{}{}",
        info.scheme(),
        info.host(),
        crate::scim::directories::base_path(&directory.directory_id)
    )
}

fn kind_of(endpoint: &str) -> Option<Kind> {
    match endpoint {
        "Users" => Some(Kind::User),
        "Groups" => Some(Kind::Group),
        _ => None,
    }
}

/// The query's parameters, their names in any case (clients differ).
fn query(req: &HttpRequest) -> Result<Map<String, Value>, Refusal> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                Some("invalidSyntax"),
                e.to_string(),
            )
        })?
        .into_inner();
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect())
}

fn param<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    key_of(params, name).and_then(|k| params[&k].as_str())
}

/// A whole-number parameter (text in a query, a number in a search body); absent, `default`.
fn number(params: &Map<String, Value>, name: &str, default: i64) -> Result<i64, Refusal> {
    let given = key_of(params, name).map(|k| &params[&k]);
    let read = match given {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(text)) => text.trim().parse().ok(),
        Some(_) => None,
    };
    read.ok_or_else(|| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            format!("{name} must be a whole number"),
        )
    })
}

/// A list of attribute names: comma-separated text in a query, an array in a search body.
fn names(params: &Map<String, Value>, name: &str) -> Option<Vec<String>> {
    match key_of(params, name).map(|k| &params[&k])? {
        Value::String(list) => Some(list.split(',').map(str::to_string).collect()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    }
}

/// The request's body as JSON, read within the body limit and timeout.
async fn read_json(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
) -> Result<Value, Refusal> {
    let settings = &state.settings;
    let deadline = tokio::time::Instant::now() + settings.webhook_body_timeout;
    let body = read_body(
        req,
        payload,
        settings.scim_body_limit,
        deadline,
        settings.webhook_body_timeout,
    )
    .await
    .map_err(|e| Refusal::new(e.status, None, e.detail))?;
    serde_json::from_slice(&body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("the body is not JSON: {e}"),
        )
    })
}

/// A search request's parameters (RFC 7644 §3.4.3).
async fn search_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
) -> Result<Map<String, Value>, Refusal> {
    match read_json(req, payload, state).await? {
        Value::Object(params) => Ok(params),
        _ => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            "a search request is a JSON object",
        )),
    }
}

/// Runs a store call on the blocking pool.
async fn run<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ScimError> + Send + 'static,
) -> Result<T, Refusal> {
    web::block(work)
        .await
        .unwrap_or_else(|_| Err(ScimError::Db(DbError::Unavailable("stopping".into()))))
        .map_err(Refusal::from)
}

/// `GET`/`POST` on `/Users`, `/Groups` and the discovery endpoints.
async fn collection(
    req: HttpRequest,
    state: web::Data<AppState>,
    mut payload: web::Payload,
) -> Answer {
    let directory = admitted(&req, &state).await?;
    let base = base_url(&req, &directory);
    let endpoint = req.match_info().get("endpoint").unwrap_or_default();
    if let Some(kind) = kind_of(endpoint) {
        return match *req.method() {
            Method::GET => list(&state, directory, vec![kind], &base, query(&req)?).await,
            Method::POST => {
                let body = read_json(&req, &mut payload, &state).await?;
                let db = state.db.clone();
                let written = run(move || store::create(&db, &directory, kind, body)).await?;
                Ok(answer_written(written, &state, &base))
            }
            _ => Err(method_not_allowed()),
        };
    }
    if endpoint == ".search" && req.method() == Method::POST {
        let params = search_body(&req, &mut payload, &state).await?;
        return list(
            &state,
            directory,
            vec![Kind::User, Kind::Group],
            &base,
            params,
        )
        .await;
    }
    if req.method() != Method::GET {
        return Err(method_not_allowed());
    }
    let answer = match endpoint {
        "ServiceProviderConfig" => {
            service_provider_config(&format!("{base}/ServiceProviderConfig"))
        }
        "ResourceTypes" => {
            let all = resource_types(&base);
            let total = all.len();
            list_response(all, total, 1)
        }
        "Schemas" => {
            let all = schemas(&base);
            let total = all.len();
            list_response(all, total, 1)
        }
        _ => return Err(no_endpoint()),
    };
    Ok(scim_json(StatusCode::OK, &answer))
}

/// The answer to a write: the resource as kept, its ETag, and where a new one is.
fn answer_written(written: store::Written, state: &AppState, base: &str) -> HttpResponse {
    // What was logged is applied now, in its directory's lane.
    state
        .applier_wakeup
        .notify_lanes(vec![written.row.directory_id.clone()]);
    let resource = written.row.resource(base);
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut answer = scim_json(status, &resource);
    if let Ok(etag) = header::HeaderValue::from_str(&written.row.etag()) {
        answer.headers_mut().insert(header::ETAG, etag);
    }
    let location = resource["meta"]["location"]
        .as_str()
        .and_then(|l| header::HeaderValue::from_str(l).ok());
    if let (true, Some(location)) = (written.created, location) {
        answer.headers_mut().insert(header::LOCATION, location);
    }
    answer
}

/// `GET /Users` or `/Groups`, or a `POST` to their `/.search` (RFC 7644 §3.4.3, the same parameters
/// in the body): filtered, paged, with the attributes asked for.
async fn list(
    state: &AppState,
    directory: ScimDirectory,
    kinds: Vec<Kind>,
    base: &str,
    params: Map<String, Value>,
) -> Answer {
    let filter = param(&params, "filter")
        .map(Filter::parse)
        .transpose()
        .map_err(|e| ScimError::InvalidFilter(e.0))?;
    let start = number(&params, "startIndex", 1)?.max(1) as usize;
    let count = number(&params, "count", MAX_RESULTS as i64)?.clamp(0, MAX_RESULTS as i64) as usize;
    let projection = projection(&params)?;
    let db = state.db.clone();
    let base = base.to_string();
    // Several kinds (a search at the root) list one after the other, paged as one list.
    let (resources, total) = run(move || {
        let (mut shown, mut total) = (Vec::new(), 0);
        for kind in kinds {
            let from = (start.saturating_sub(total)).max(1);
            let (page, of_kind) = store::list(
                &db,
                &directory,
                kind,
                filter.as_ref(),
                &base,
                from,
                count - shown.len(),
            )?;
            shown.extend(page);
            total += of_kind;
        }
        Ok((shown, total))
    })
    .await?;
    let shown = resources.into_iter().map(|r| projection.apply(r)).collect();
    Ok(scim_json(
        StatusCode::OK,
        &list_response(shown, total, start),
    ))
}

/// `GET`, `PUT`, `PATCH`, `DELETE` of one resource, and one resource type or schema.
async fn single(req: HttpRequest, state: web::Data<AppState>, mut payload: web::Payload) -> Answer {
    let directory = admitted(&req, &state).await?;
    let base = base_url(&req, &directory);
    let endpoint = req.match_info().get("endpoint").unwrap_or_default();
    let id = req.match_info().get("id").unwrap_or_default().to_string();
    let Some(kind) = kind_of(endpoint) else {
        if req.method() != Method::GET {
            return Err(method_not_allowed());
        }
        let all = match endpoint {
            "ResourceTypes" => resource_types(&base),
            "Schemas" => schemas(&base),
            _ => return Err(no_endpoint()),
        };
        let found = all
            .into_iter()
            .find(|r| r["id"].as_str() == Some(id.as_str()))
            .ok_or_else(|| not_found(format!("{endpoint} {id} not found")))?;
        return Ok(scim_json(StatusCode::OK, &found));
    };
    let if_match = req
        .headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .and_then(if_match_version);
    let db = state.db.clone();
    match *req.method() {
        Method::POST if id == ".search" => {
            let params = search_body(&req, &mut payload, &state).await?;
            list(&state, directory, vec![kind], &base, params).await
        }
        Method::GET => {
            let params = query(&req)?;
            let row = run(move || store::get(&db, &directory, kind, &id)).await?;
            let unchanged = req
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|tags| {
                    tags.split(',')
                        .any(|t| if_match_version(t) == Some(row.version))
                });
            let mut answer = if unchanged {
                HttpResponse::NotModified().finish()
            } else {
                scim_json(
                    StatusCode::OK,
                    &projection(&params)?.apply(row.resource(&base)),
                )
            };
            if let Ok(etag) = header::HeaderValue::from_str(&row.etag()) {
                answer.headers_mut().insert(header::ETAG, etag);
            }
            Ok(answer)
        }
        Method::PUT => {
            let body = read_json(&req, &mut payload, &state).await?;
            let written =
                run(move || store::replace(&db, &directory, kind, &id, body, if_match)).await?;
            Ok(answer_written(written, &state, &base))
        }
        Method::PATCH => {
            let body = read_json(&req, &mut payload, &state).await?;
            let written =
                run(move || store::patch(&db, &directory, kind, &id, &body, if_match)).await?;
            Ok(answer_written(written, &state, &base))
        }
        Method::DELETE => {
            let directory_id = directory.directory_id.clone();
            run(move || store::delete(&db, &directory, kind, &id, if_match)).await?;
            state.applier_wakeup.notify_lanes(vec![directory_id]);
            Ok(HttpResponse::NoContent().finish())
        }
        _ => Err(method_not_allowed()),
    }
}

/// The attributes a client asked to see (`attributes`) or not to see (`excludedAttributes`).
fn projection(params: &Map<String, Value>) -> Result<Projection, ScimError> {
    Projection::parse(
        names(params, "attributes").as_deref(),
        names(params, "excludedAttributes").as_deref(),
    )
    .map_err(|e| ScimError::InvalidSyntax(format!("attributes: {}", e.0)))
}
