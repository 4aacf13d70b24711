//! Bearer tokens: the bootstrap operator token from the configuration, and stored tokens kept as SHA-256
//! hashes, each either an operator's or one workspace's admin's. A stored token may carry a name and an
//! expiry, is refused once revoked or expired, and records when it was last used (to the minute).

use super::error::ApiError;
use super::AppState;
use crate::audit::Cause;
use crate::db::models::ApiTokenRow;
use crate::db::schema::api_tokens;
use crate::db::{Database, DbError};
use crate::secret::ExposeSecret;
use crate::tokens::hash_token;
use crate::workos::timestamp;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use diesel::prelude::*;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// May do everything.
    Operator { cause: Cause },
    /// Acts on one workspace only.
    WorkspaceAdmin {
        workspace_id: String,
        token_id: String,
    },
}

impl Caller {
    /// The audit cause of what this caller changes.
    pub fn cause(&self) -> Cause {
        match self {
            Caller::Operator { cause } => cause.clone(),
            Caller::WorkspaceAdmin { token_id, .. } => Cause::ApiToken(token_id.clone()),
        }
    }

    /// Whether this caller is an operator.
    pub fn is_operator(&self) -> bool {
        matches!(self, Caller::Operator { .. })
    }

    /// 403 unless an operator.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only an operator may do this"))
        }
    }

    /// 404 for a workspace admin asking about another workspace, so it is not revealed.
    pub fn require_workspace(&self, workspace_id: &str) -> Result<(), ApiError> {
        match self {
            Caller::WorkspaceAdmin {
                workspace_id: own, ..
            } if own != workspace_id => Err(ApiError::not_found("workspace")),
            _ => Ok(()),
        }
    }
}

/// How stale a token's `last_used_at` may grow before a use writes it again.
const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// Past this many tokens remembered, those not written for a minute are forgotten.
const LAST_USED_REMEMBERED: usize = 4096;

/// When this process last wrote each token's `last_used_at`, so that a busy token costs one write a minute
/// rather than one a request.
#[derive(Default)]
pub struct TokenUse {
    written: Mutex<HashMap<String, Instant>>,
}

impl TokenUse {
    /// Whether a use of `token_id` is due to be written; if so, counts it as written now.
    fn due(&self, token_id: &str) -> bool {
        let now = Instant::now();
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written
            .get(token_id)
            .is_some_and(|at| now.duration_since(*at) < LAST_USED_RESOLUTION)
        {
            return false;
        }
        if written.len() >= LAST_USED_REMEMBERED {
            written.retain(|_, at| now.duration_since(*at) < LAST_USED_RESOLUTION);
        }
        written.insert(token_id.to_string(), now);
        true
    }

    /// Records a use of `token_id`: when due, writes its `last_used_at` in the background, behind any
    /// webhook's acknowledgement. A failure is logged; the request goes on regardless.
    fn record(&self, db: &Database, token_id: &str) {
        if !self.due(token_id) {
            return;
        }
        let (db, id) = (db.clone(), token_id.to_string());
        tokio::task::spawn_blocking(move || {
            let written = db.write(|conn| {
                diesel::update(api_tokens::table.find(&id))
                    .set(api_tokens::last_used_at.eq(timestamp::now()))
                    .execute(conn)
                    .map_err(DbError::from)
            });
            if let Err(error) = written {
                tracing::warn!(token = %id, error = %error, "could not record when the token was last used");
            }
        });
    }
}

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
            let hash = hash_token(&token);
            if let Some(bootstrap) = &state.settings.operator_token {
                if bool::from(
                    hash_token(bootstrap.expose_secret())
                        .as_bytes()
                        .ct_eq(hash.as_bytes()),
                ) {
                    return Ok(Caller::Operator {
                        cause: Cause::BootstrapOperator,
                    });
                }
            }
            let db = state.db.clone();
            let found = web::block(move || {
                db.read(|conn| {
                    api_tokens::table
                        .filter(api_tokens::token_hash.eq(&hash))
                        .select(ApiTokenRow::as_select())
                        .first(conn)
                        .optional()
                        .map_err(ApiError::from)
                })
            })
            .await??
            .filter(|row| row.is_live(timestamp::now()))
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
