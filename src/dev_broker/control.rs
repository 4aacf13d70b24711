//! The control API under `/_dev/`: change the directory as an identity provider would, set the faults,
//! and read what the broker holds and which events it sent. No auth; JSON in and out.

use super::event_log::EventExpiry;
use super::faults::FaultsUpdate;
use super::model::{ModelError, NewGroup, NewUser, UserChanges};
use super::shared::Shared;
use actix_web::http::StatusCode;
use actix_web::{error, web, HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::json;

/// A control API error: 404 `entity_not_found`, 409 `conflict`, 422 `Validation failed` or 400.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    BadRequest(String),
}

impl ResponseError for ControlError {
    fn status_code(&self) -> StatusCode {
        match self {
            ControlError::Model(ModelError::NotFound { .. }) => StatusCode::NOT_FOUND,
            ControlError::Model(ModelError::Conflict(_)) => StatusCode::CONFLICT,
            ControlError::Model(ModelError::Invalid { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            ControlError::Model(ModelError::NotFound { id, .. }) => json!({
                "message": self.to_string(), "code": "entity_not_found", "entity_id": id,
            }),
            ControlError::Model(ModelError::Conflict(message)) => {
                json!({ "message": message, "code": "conflict" })
            }
            ControlError::Model(ModelError::Invalid { field, message }) => json!({
                "message": "Validation failed", "errors": [{ "field": field, "code": message }],
            }),
            ControlError::BadRequest(message) => {
                json!({ "message": message, "code": "bad_request" })
            }
        };
        HttpResponse::build(self.status_code()).json(body)
    }
}

/// JSON bodies that do not parse are answered 400 in the control API's shape.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().error_handler(|err, _| {
        let message = err.to_string();
        error::InternalError::from_response(err, ControlError::BadRequest(message).error_response())
            .into()
    })
}

/// Routes under `/_dev/`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/_dev")
            .service(web::resource("/state").route(web::get().to(state)))
            .service(web::resource("/truth").route(web::get().to(truth)))
            .service(web::resource("/events").route(web::get().to(events)))
            .service(web::resource("/events/expire").route(web::post().to(expire_events)))
            .service(
                web::resource("/faults")
                    .route(web::get().to(faults))
                    .route(web::post().to(set_faults)),
            )
            .service(web::resource("/random-changes").route(web::post().to(random_changes)))
            .service(web::resource("/users").route(web::post().to(create_user)))
            .service(
                web::resource("/users/{id}")
                    .route(web::patch().to(update_user))
                    .route(web::delete().to(delete_user)),
            )
            .service(web::resource("/users/{id}/deactivate").route(web::post().to(deactivate_user)))
            .service(web::resource("/users/{id}/reactivate").route(web::post().to(reactivate_user)))
            .service(web::resource("/users/{id}/move").route(web::post().to(move_user)))
            .service(web::resource("/groups").route(web::post().to(create_group)))
            .service(
                web::resource("/groups/{id}")
                    .route(web::patch().to(rename_group))
                    .route(web::delete().to(delete_group)),
            )
            .service(web::resource("/groups/{id}/role").route(web::put().to(set_group_role)))
            .service(web::resource("/groups/{id}/members").route(web::post().to(add_member)))
            .service(
                web::resource("/groups/{id}/members/{user_id}")
                    .route(web::delete().to(remove_member)),
            ),
    );
}

type Answer = Result<HttpResponse, ControlError>;

async fn state(shared: web::Data<Shared>) -> HttpResponse {
    let counts = shared.read().counts();
    HttpResponse::Ok().json(json!({
        "counts": counts,
        "events": shared.log.summary(),
        "faults": shared.faults(),
    }))
}

async fn truth(shared: web::Data<Shared>) -> HttpResponse {
    let truth = shared.read().truth();
    HttpResponse::Ok().json(truth)
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    since: u64,
}

async fn events(shared: web::Data<Shared>, query: web::Query<EventsQuery>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "object": "list",
        "data": shared.log.since(query.since),
    }))
}

/// Which events to expire: exactly one of the three.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expire {
    /// Events older than this event id or ISO-8601 time.
    before: Option<String>,
    /// This event id and every older one.
    through: Option<String>,
    /// Every event so far.
    #[serde(default)]
    all: bool,
}

async fn expire_events(shared: web::Data<Shared>, body: web::Json<Expire>) -> Answer {
    let expiry =
        match body.into_inner() {
            Expire {
                before: Some(mark),
                through: None,
                all: false,
            } => EventExpiry::Before(mark),
            Expire {
                before: None,
                through: Some(id),
                all: false,
            } => EventExpiry::Through(id),
            Expire {
                before: None,
                through: None,
                all: true,
            } => EventExpiry::All,
            _ => return Err(ControlError::BadRequest(
                "give exactly one of {\"before\": <event id or time>}, {\"through\": <event id>} \
                 or {\"all\": true}"
                    .into(),
            )),
        };
    let oldest = shared.log.expire(&expiry)?;
    Ok(HttpResponse::Ok().json(json!({
        "events": shared.log.summary(),
        "oldest_served": oldest,
    })))
}

async fn faults(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.faults())
}

async fn set_faults(shared: web::Data<Shared>, update: web::Json<FaultsUpdate>) -> Answer {
    Ok(HttpResponse::Ok().json(shared.update_faults(&update)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomChanges {
    count: u32,
}

async fn random_changes(shared: web::Data<Shared>, body: web::Json<RandomChanges>) -> HttpResponse {
    let shared = shared.into_inner();
    let count = body.count;
    let events = web::block(move || shared.random_changes(count))
        .await
        .unwrap_or_default();
    HttpResponse::Ok().json(json!({ "changes": count, "events": events }))
}

async fn create_user(shared: web::Data<Shared>, body: web::Json<NewUser>) -> Answer {
    let (user, events) = shared.change(|m| m.create_user(body.into_inner()))?;
    Ok(HttpResponse::Created().json(json!({ "user": user, "events": events })))
}

async fn update_user(
    shared: web::Data<Shared>,
    id: web::Path<String>,
    body: web::Json<UserChanges>,
) -> Answer {
    let (user, events) = shared.change(|m| m.update_user(&id, body.into_inner()))?;
    Ok(HttpResponse::Ok().json(json!({ "user": user, "events": events })))
}

async fn delete_user(shared: web::Data<Shared>, id: web::Path<String>) -> Answer {
    let (user, events) = shared.change(|m| m.delete_user(&id))?;
    Ok(HttpResponse::Ok().json(json!({ "user": user, "events": events })))
}

async fn deactivate_user(shared: web::Data<Shared>, id: web::Path<String>) -> Answer {
    let (user, events) = shared.change(|m| m.set_user_state(&id, false))?;
    Ok(HttpResponse::Ok().json(json!({ "user": user, "events": events })))
}

async fn reactivate_user(shared: web::Data<Shared>, id: web::Path<String>) -> Answer {
    let (user, events) = shared.change(|m| m.set_user_state(&id, true))?;
    Ok(HttpResponse::Ok().json(json!({ "user": user, "events": events })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Move {
    from_group: String,
    to_group: String,
}

async fn move_user(
    shared: web::Data<Shared>,
    id: web::Path<String>,
    body: web::Json<Move>,
) -> Answer {
    let ((), events) =
        shared.change(|m| Ok(((), m.move_member(&id, &body.from_group, &body.to_group)?)))?;
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

async fn create_group(shared: web::Data<Shared>, body: web::Json<NewGroup>) -> Answer {
    let (group, events) = shared.change(|m| m.create_group(body.into_inner()))?;
    Ok(HttpResponse::Created().json(json!({ "group": group, "events": events })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

async fn rename_group(
    shared: web::Data<Shared>,
    id: web::Path<String>,
    body: web::Json<Rename>,
) -> Answer {
    let (group, events) = shared.change(|m| m.rename_group(&id, &body.name))?;
    Ok(HttpResponse::Ok().json(json!({ "group": group, "events": events })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupRole {
    slug: Option<String>,
}

async fn set_group_role(
    shared: web::Data<Shared>,
    id: web::Path<String>,
    body: web::Json<GroupRole>,
) -> Answer {
    let slug = body.into_inner().slug;
    let (group, events) = shared.change(|m| m.set_group_role(&id, slug))?;
    Ok(HttpResponse::Ok().json(json!({ "group": group, "events": events })))
}

async fn delete_group(shared: web::Data<Shared>, id: web::Path<String>) -> Answer {
    let (group, events) = shared.change(|m| m.delete_group(&id))?;
    Ok(HttpResponse::Ok().json(json!({ "group": group, "events": events })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    user_id: String,
}

async fn add_member(
    shared: web::Data<Shared>,
    id: web::Path<String>,
    body: web::Json<Member>,
) -> Answer {
    let ((), events) = shared.change(|m| Ok(((), m.add_member(&id, &body.user_id)?)))?;
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

async fn remove_member(shared: web::Data<Shared>, path: web::Path<(String, String)>) -> Answer {
    let (group, user) = path.into_inner();
    let ((), events) = shared.change(|m| Ok(((), m.remove_member(&group, &user)?)))?;
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}
