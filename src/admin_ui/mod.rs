//! The admin's screens in a browser: a few static files embedded in the binary, served at `/admin/`.
//!
//! The page holds no data of its own: its script calls the REST API (`/api/v1/…`) with the token the
//! admin signs in with, kept in the browser's session storage. These routes are not part of the API
//! and not in the OpenAPI document.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// Where the screens are served.
pub const PATH: &str = "/admin/";

/// A static file of the screens.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        path: "/admin/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        path: "/admin/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/app.js"),
    },
    Asset {
        path: "/admin/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("assets/favicon.svg"),
    },
    Asset {
        path: "/admin/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/app.css"),
    },
];

/// Only the page's own files run and load: no inline script or style, no other origin, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

fn serve(asset: &'static Asset) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(asset.body)
}

/// Registers the screens' files, and `/admin` redirecting to `/admin/`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        crate::api::resource("/admin").route(web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, PATH))
                .finish()
        })),
    );
    for asset in ASSETS {
        cfg.service(
            crate::api::resource(asset.path)
                .route(web::get().to(move || async move { serve(asset) })),
        );
    }
}
