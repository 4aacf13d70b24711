//! Handlers reach the database off the async workers, and what fails there answers as the API maps it.

use super::error::{ApiError, ApiResult};
use crate::db::{Database, DbConnection};
use crate::state::AppState;
use actix_web::web;

/// The database as handlers use it: each call runs on the blocking pool, never on an async worker.
pub(crate) trait OffWorkers {
    /// Calls a service function with the database; its error answers as the API maps it.
    async fn call<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, E> + Send + 'static,
    ) -> ApiResult<T>;

    /// Runs a write of the workspace made of steps (see
    /// [`crate::db::Database::write_workspace_in_steps`]).
    async fn write_workspace_in_steps<T: Send + 'static>(
        &self,
        workspace_id: String,
        step: impl FnMut(&mut DbConnection, usize) -> ApiResult<Option<T>> + Send + 'static,
    ) -> ApiResult<T>;

    /// Runs `work` in a read-only transaction (one snapshot, no lock).
    async fn read_only<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T>;

    /// Runs `work` on a connection.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> ApiResult<T> + Send + 'static,
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

    async fn write_workspace_in_steps<T: Send + 'static>(
        &self,
        workspace_id: String,
        step: impl FnMut(&mut DbConnection, usize) -> ApiResult<Option<T>> + Send + 'static,
    ) -> ApiResult<T> {
        let db = self.db.clone();
        web::block(move || db.write_workspace_in_steps(&workspace_id, step)).await?
    }

    async fn read_only<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let db = self.db.clone();
        web::block(move || db.read_only(work)).await?
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let db = self.db.clone();
        web::block(move || db.read(work)).await?
    }
}
