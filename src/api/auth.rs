//! Bearer tokens: the bootstrap operator token from the configuration, and stored tokens kept as SHA-256
//! hashes, each either an operator's or one workspace's admin's. A stored token may carry a name and an
//! expiry, is refused once revoked or expired, and records when it was last used (to the minute).

use super::error::ApiError;
use super::pagination::Page;
use super::AppState;
use crate::audit::Cause;
use crate::config::parse_duration;
use crate::db::models::ApiTokenRow;
use crate::db::schema::api_tokens;
use crate::db::{Database, DbConnection, DbError};
use crate::ids::new_id;
use crate::workos::timestamp::{self, Timestamp};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};
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

/// The SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token, shown once.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("rc_{}", hex::encode(bytes))
}

/// The longest life a token may be given: ten years.
const LONGEST_TOKEN_LIFE: Duration = Duration::from_secs(3650 * 86_400);

/// When a token given `expires_in` (such as `30d`, `12h` or `90m`) at `now` expires: from a second up to
/// ten years later. The error says what is wrong; the caller names the field.
pub fn token_expiry(expires_in: &str, now: Timestamp) -> Result<Timestamp, String> {
    let life = parse_duration(expires_in)?;
    if life < Duration::from_secs(1) {
        return Err(format!("{expires_in:?} must be at least 1s"));
    }
    if life > LONGEST_TOKEN_LIFE {
        return Err(format!("{expires_in:?} is longer than 3650d"));
    }
    chrono::Duration::from_std(life)
        .ok()
        .and_then(|life| now.checked_add_signed(life))
        .ok_or_else(|| format!("{expires_in:?} is too long"))
}

/// Stores a new token for a workspace admin (or an operator, with `None`), with an optional name and expiry;
/// returns it as stored and the token itself, shown once.
pub fn create_token(
    conn: &mut DbConnection,
    workspace_id: Option<&str>,
    name: Option<&str>,
    expires_at: Option<Timestamp>,
) -> QueryResult<(ApiTokenRow, String)> {
    let token = generate_token();
    let row = ApiTokenRow {
        id: new_id("tok"),
        workspace_id: workspace_id.map(str::to_string),
        token_hash: hash_token(&token),
        created_at: timestamp::now(),
        name: name.map(str::to_string),
        last_used_at: None,
        expires_at,
        revoked_at: None,
    };
    diesel::insert_into(api_tokens::table)
        .values(&row)
        .execute(conn)?;
    Ok((row, token))
}

/// The tokens of a workspace (of the operators, with `None`) that are not revoked, expired ones included,
/// oldest first: one page of them fetched with `limit + 1`, or with no page all of them.
pub fn unrevoked_tokens(
    conn: &mut DbConnection,
    workspace_id: Option<&str>,
    page: Option<&Page>,
) -> QueryResult<Vec<ApiTokenRow>> {
    let mut q = api_tokens::table
        .filter(api_tokens::revoked_at.is_null())
        .select(ApiTokenRow::as_select())
        .order(api_tokens::id)
        .into_boxed();
    q = match workspace_id {
        Some(ws) => q.filter(api_tokens::workspace_id.eq(ws.to_string())),
        None => q.filter(api_tokens::workspace_id.is_null()),
    };
    if let Some(page) = page {
        q = q.limit(page.limit + 1);
        if let Some(after) = &page.after {
            q = q.filter(api_tokens::id.gt(after.clone()));
        }
    }
    q.load(conn)
}

/// Revokes the token `id` unless it already is; with `workspace_id`, only a token of that workspace.
/// Whether a token was revoked. One statement, so a second process writing the same SQLite file (the
/// command line beside the server) waits its turn instead of failing.
pub fn revoke_token(
    conn: &mut DbConnection,
    id: &str,
    workspace_id: Option<&str>,
) -> QueryResult<bool> {
    let mut revoke = diesel::update(api_tokens::table)
        .filter(api_tokens::id.eq(id.to_string()))
        .filter(api_tokens::revoked_at.is_null())
        .set(api_tokens::revoked_at.eq(timestamp::now()))
        .into_boxed();
    if let Some(ws) = workspace_id {
        revoke = revoke.filter(api_tokens::workspace_id.eq(ws.to_string()));
    }
    Ok(revoke.execute(conn)? > 0)
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
                if bool::from(hash_token(bootstrap).as_bytes().ct_eq(hash.as_bytes())) {
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
