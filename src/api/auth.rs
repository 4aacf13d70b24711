//! Bearer tokens: the bootstrap operator token from the configuration, and stored tokens kept as SHA-256
//! hashes, each either an operator's or one workspace's admin's.

use super::error::ApiError;
use super::AppState;
use crate::audit::Cause;
use crate::db::models::ApiTokenRow;
use crate::db::schema::api_tokens;
use crate::db::DbConnection;
use crate::ids::new_id;
use crate::workos::timestamp;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
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

/// Stores a new token for a workspace admin (or an operator, with `None`); returns its id and the token.
pub fn create_token(
    conn: &mut DbConnection,
    workspace_id: Option<&str>,
) -> QueryResult<(String, String)> {
    let token = generate_token();
    let id = new_id("tok");
    diesel::insert_into(api_tokens::table)
        .values(ApiTokenRow {
            id: id.clone(),
            workspace_id: workspace_id.map(str::to_string),
            token_hash: hash_token(&token),
            created_at: timestamp::now(),
        })
        .execute(conn)?;
    Ok((id, token))
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
            .await??;
            match found {
                None => Err(ApiError::unauthorized()),
                Some(ApiTokenRow {
                    id,
                    workspace_id: None,
                    ..
                }) => Ok(Caller::Operator {
                    cause: Cause::ApiToken(id),
                }),
                Some(ApiTokenRow {
                    id,
                    workspace_id: Some(workspace_id),
                    ..
                }) => Ok(Caller::WorkspaceAdmin {
                    workspace_id,
                    token_id: id,
                }),
            }
        })
    }
}
