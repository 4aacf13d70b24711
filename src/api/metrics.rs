//! `GET /metrics`: the service's metrics in the Prometheus text exposition format (version 0.0.4), with
//! the applier's backlog read from the database at each scrape.

use super::{resource, AppState};
use actix_web::{web, HttpResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/metrics").route(web::get().to(metrics)));
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let db = state.db.clone();
    let backlog = match web::block(move || db.read(crate::intake::applier::backlog)).await {
        Ok(Ok(backlog)) => Some(backlog),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "/metrics could not read the backlog from the database");
            None
        }
        Err(_) => None,
    };
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(state.metrics.render(backlog, state.applier.running()))
}
