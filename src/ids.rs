//! Identifiers Rollcall hands out: a readable prefix and a ULID, so they sort by creation time.

/// A new identifier such as `ws_01J…` or `mem_01J…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}
