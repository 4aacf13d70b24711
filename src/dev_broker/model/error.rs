//! Why the model refuses a read or a change.

/// Why a read or a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// An id that names nothing (the pull API's 404 `entity_not_found`).
    #[error("{kind} not found: '{id}'.")]
    NotFound { kind: &'static str, id: String },
    /// A change that contradicts the directory, such as adding a member twice.
    #[error("{0}")]
    Conflict(String),
    /// A request value that cannot be used.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

pub(super) fn not_found(kind: &'static str, id: &str) -> ModelError {
    ModelError::NotFound {
        kind,
        id: id.to_string(),
    }
}
