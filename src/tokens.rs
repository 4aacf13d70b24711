//! API tokens as stored: created with a random secret shown once, kept as its SHA-256, listed, revoked. The
//! admin API and the command line both manage tokens through here; checking a caller's token is the HTTP
//! layer's (`api::auth`).

use crate::config::parse_setting_duration;
use crate::db::models::ApiTokenRow;
use crate::db::schema::api_tokens;
use crate::db::DbConnection;
use crate::ids::new_id;
use crate::workos::timestamp::{self, Timestamp};
use diesel::prelude::*;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// A name as admins give it: trimmed, 1 to 200 characters, no control characters.
pub fn check_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.contains(char::is_control) {
        return Err("name: must be 1 to 200 characters, without control characters".into());
    }
    Ok(name.to_string())
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
    // One number and one unit, as the API documents it (`^[0-9]+(ms|s|m|h|d)?$`); the settings' parser reads it.
    let text = expires_in.trim();
    let unit = text.trim_start_matches(|c: char| c.is_ascii_digit());
    if unit.len() == text.len() || !["", "ms", "s", "m", "h", "d"].contains(&unit) {
        return Err(format!(
            "{expires_in:?} is not a duration such as 90s, 30m, 12h or 30d"
        ));
    }
    let life = parse_setting_duration(text)?;
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

/// The stored token that `token` is, while it is live (neither revoked nor expired).
pub fn live_token(conn: &mut DbConnection, token: &str) -> QueryResult<Option<ApiTokenRow>> {
    let found = api_tokens::table
        .filter(api_tokens::token_hash.eq(hash_token(token)))
        .select(ApiTokenRow::as_select())
        .first(conn)
        .optional()?;
    Ok(found.filter(|row| row.is_live(timestamp::now())))
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
/// oldest first: one page of them (`(limit, after)`) fetched with `limit + 1`, or with no page all of them.
pub fn unrevoked_tokens(
    conn: &mut DbConnection,
    workspace_id: Option<&str>,
    page: Option<(i64, Option<&str>)>,
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
    if let Some((limit, after)) = page {
        q = q.limit(limit + 1);
        if let Some(after) = after {
            q = q.filter(api_tokens::id.gt(after.to_string()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lives_one_number_of_one_unit_from_a_second_to_ten_years() {
        let now = timestamp::now();
        let life = |text: &str| token_expiry(text, now).map(|at| (at - now).num_seconds());
        assert_eq!(life("90"), Ok(90));
        assert_eq!(life("30m"), Ok(1800));
        assert_eq!(life("30d"), Ok(30 * 86_400));
        for refused in [
            "",
            "d",
            "3w",
            "1h30m",
            "0",
            "500ms",
            "3651d",
            "99999999999999999999d",
        ] {
            assert!(life(refused).is_err(), "{refused:?}");
        }
    }
}
