//! Bearer tokens: the bootstrap operator token from the configuration, and stored tokens kept as SHA-256
//! hashes, each either an operator's or one workspace's admin's; a request's token tells its [`Caller`].
//! A stored token may carry a name and an expiry, is refused once revoked or expired, and records when it
//! was last used (to the minute, see [`crate::state::TokenUse`]).

use super::error::ApiError;
use crate::access::Caller;
use crate::audit::Cause;
use crate::secret::ExposeSecret;
use crate::state::AppState;
use crate::tokens::{hash_token, live_token};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;
use subtle::ConstantTimeEq;

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let token = token.ok_or_else(ApiError::unauthorized)?;
            if let Some(bootstrap) = &state.settings.operator_token {
                if bool::from(
                    hash_token(bootstrap.expose_secret())
                        .as_bytes()
                        .ct_eq(hash_token(&token).as_bytes()),
                ) {
                    return Ok(Caller::Operator {
                        cause: Cause::BootstrapOperator,
                    });
                }
            }
            let db = state.db.clone();
            let found = web::block(move || {
                db.read(|conn| live_token(conn, &token).map_err(ApiError::from))
            })
            .await??
            .ok_or_else(ApiError::unauthorized)?;
            state.token_use.record(&state.db, &found.id);
            Ok(match found.workspace_id {
                None => Caller::Operator {
                    cause: Cause::ApiToken(found.id),
                },
                Some(workspace_id) => Caller::WorkspaceAdmin {
                    workspace_id,
                    token_id: found.id,
                },
            })
        })
    }
}
