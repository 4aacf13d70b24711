//! Routes as handlers declare them: each served under the method and path of its `#[utoipa::path]`.

use super::error::ApiError;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use utoipa::openapi::HttpMethod;

/// A route whose other methods answer 405.
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::method_not_allowed())
    }))
}

/// A served route: the method and path of its handler's `#[utoipa::path]`, and what answers it.
///
/// The app is built from [`super::routes`] and the OpenAPI document from the same attributes, so a
/// route cannot be served under another path or method than the one it is documented with.
#[derive(Clone)]
pub struct Route {
    pub method: Method,
    pub path: String,
    /// The handler that answers it.
    pub(super) handler: fn() -> actix_web::Route,
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
