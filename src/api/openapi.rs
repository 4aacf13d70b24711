//! `GET /openapi.json`: the OpenAPI document of the whole API.

use super::resource;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/openapi.json").route(web::get().to(openapi_json)));
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// The OpenAPI 3.0 document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Rollcall", "version": env!("CARGO_PKG_VERSION") },
        "paths": {},
    })
}
