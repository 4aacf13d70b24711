//! `GET /healthz` (the process answers) and `GET /readyz` (the applier runs and the database answers too).

use super::{resource, AppState};
use actix_web::{web, HttpResponse};
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(healthz)))
        .service(resource("/readyz").route(web::get().to(readyz)));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if !state.applier.running() {
        tracing::warn!("not ready: the applier has stopped; deliveries are stored but not applied");
        return HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "unavailable", "applier": "stopped" }));
    }
    let db = state.db.clone();
    match web::block(move || db.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({ "status": "ready", "database": "ok" })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "database": "unreachable" }))
        }
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable" })),
    }
}
