//! `GET /metrics`: the service's metrics in the Prometheus text exposition format (version 0.0.4), with
//! the applier's backlog and the Events API tail's lag read from the database at each scrape.

use super::route::Route;
use crate::state::AppState;
use actix_web::{web, HttpResponse};

pub fn routes() -> Vec<Route> {
    Route::of::<__path_metrics>(|| web::to(metrics))
}

/// Counters, gauges and histograms for Prometheus
///
/// The Prometheus text exposition format, version 0.0.4: runs, broker requests, webhooks, the applier's
/// backlog and lag, the Events API tail's pages, events, cursor losses and lag, and the time webhooks,
/// broker requests and runs take (the README lists every series). Counts are this process's since it
/// started; the backlog and the tail's lag are read from the database at each scrape.
#[utoipa::path(get, path = "/metrics", tag = "service", responses(
    (status = 200, description = "Every series, one sample a line.", body = String, content_type = "text/plain"),
))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let db = state.db.clone();
    let backlog = match web::block(move || {
        db.read(|conn| {
            let mut backlog = crate::intake::applier::backlog(conn)?;
            backlog.event_tail = crate::event_tail::place::lag(conn)?;
            Ok::<_, crate::db::DbError>(backlog)
        })
    })
    .await
    {
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
