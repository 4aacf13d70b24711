//! `GET /healthz` (the process answers) and `GET /readyz` (the applier runs and the database answers too).

use super::route::Route;
use crate::schemas::one_of;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::openapi::schema::Schema;
use utoipa::ToSchema;

pub fn routes() -> Vec<Route> {
    [
        Route::of::<__path_healthz>(|| web::to(healthz)),
        Route::of::<__path_readyz>(|| web::to(readyz)),
    ]
    .concat()
}

/// The process answers.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(schema_with = ok)]
    status: &'static str,
}

/// Whether the service can do its work.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    #[schema(schema_with = readiness)]
    status: &'static str,
    /// `ok` or `unreachable`; left out when the database was not asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = reachability)]
    database: Option<&'static str>,
    /// `stopped` when the applier has stopped; left out otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = stopped)]
    applier: Option<&'static str>,
    /// Why the Events API tail looks stuck (it has read nothing although webhooks brought newer events);
    /// left out otherwise. It does not make the service unready: webhooks still work.
    #[serde(skip_serializing_if = "Option::is_none")]
    event_tail: Option<String>,
}

impl Readiness {
    fn unavailable() -> Self {
        Readiness {
            status: "unavailable",
            database: None,
            applier: None,
            event_tail: None,
        }
    }
}

/// Liveness: the process answers
#[utoipa::path(get, path = "/healthz", tag = "service", responses(
    (status = 200, description = "Alive.", body = Health),
))]
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: the database answers too
#[utoipa::path(get, path = "/readyz", tag = "service", responses(
    (status = 200, description = "Ready.", body = Readiness),
    (status = 503, description = "The applier has stopped or the database does not answer.", body = Readiness),
))]
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if !state.applier.running() {
        tracing::warn!("not ready: the applier has stopped; deliveries are stored but not applied");
        return HttpResponse::ServiceUnavailable().json(Readiness {
            applier: Some("stopped"),
            ..Readiness::unavailable()
        });
    }
    let db = state.db.clone();
    let ready = move || {
        db.ping()?;
        db.read(|conn| Ok::<_, crate::db::DbError>(crate::event_tail::place::stalled(conn)?))
    };
    match web::block(ready).await {
        Ok(Ok(event_tail)) => {
            if let Some(why) = &event_tail {
                tracing::warn!(reason = %why, "the Events API tail looks stuck");
            }
            HttpResponse::Ok().json(Readiness {
                status: "ready",
                database: Some("ok"),
                applier: None,
                event_tail,
            })
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            HttpResponse::ServiceUnavailable().json(Readiness {
                database: Some("unreachable"),
                ..Readiness::unavailable()
            })
        }
        Err(_) => HttpResponse::ServiceUnavailable().json(Readiness::unavailable()),
    }
}

fn ok() -> Schema {
    one_of(["ok"])
}

fn readiness() -> Schema {
    one_of(["ready", "unavailable"])
}

fn reachability() -> Schema {
    one_of(["ok", "unreachable"])
}

fn stopped() -> Schema {
    one_of(["stopped"])
}
