//! Handlers reach the database off the async workers, and what fails there answers as the API maps it.

use super::error::{ApiError, ApiResult};
use crate::db::Database;
use crate::state::AppState;
use actix_web::web;

/// The database as handlers use it: each call runs on the blocking pool, never on an async worker.
pub(crate) trait OffWorkers {
    /// Calls a service function with the database; its error answers as the API maps it.
    async fn call<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, E> + Send + 'static,
    ) -> ApiResult<T>;
}

impl OffWorkers for AppState {
    async fn call<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, E> + Send + 'static,
    ) -> ApiResult<T> {
        let db = self.db.clone();
        web::block(move || work(&db)).await?.map_err(Into::into)
    }
}
