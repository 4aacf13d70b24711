//! Reading the change feed: a workspace's changes by position, or every workspace's in one order (the
//! operator's), oldest first, from a cursor.
//!
//! Across workspaces the order is the order of commit on SQLite (one writer: `id`). On PostgreSQL,
//! changes of several workspaces commit concurrently and ids are taken before commit, so the feed is
//! ordered by the writing transaction's id and then `id`, and shows a change only once every
//! transaction older than its own that may add to the feed has ended
//! ([`feed_horizon_pg`]): a change that becomes visible later can never sort before one already read.
//! (A long write of Rollcall's holds the feed across workspaces back until it ends; a workspace's own feed
//! is not held, and nor is either by other schemas' or databases' transactions.)

use crate::db::models::ChangeRow;
use crate::db::ordering::feed_horizon_pg;
use crate::db::schema::{change_feed_pruned, changes, workspaces};
use crate::db::DbConnection;
use crate::domain::ShownCause;
use crate::workos::timestamp::time_json;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One change in the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    /// The change's position in its workspace's feed: 1, 2, 3… without gaps.
    pub position: i64,
    pub workspace_id: String,
    #[serde(rename = "type")]
    #[schema(value_type = crate::domain::ChangeType, inline)]
    pub kind: String,
    #[schema(format = DateTime)]
    pub occurred_at: String,
    pub cause: ShownCause,
    #[serde(flatten)]
    pub data: ChangeData,
}

/// What changed: the object after the change, and for a change to one, what it was before.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct ChangeData {
    /// `member.*`: the member after the change (before it, for `member.removed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::directory_sync::members::Member>)]
    pub member: Option<Value>,
    /// `team.created`, `team.renamed`, `team.deleted`: the team's `id` and `name` after the change
    /// (before it, for `team.deleted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FeedTeam>)]
    pub team: Option<Value>,
    /// `team.member_*`: the member's membership of the team after the change; `sources` is empty once
    /// they left it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FeedTeamMember>)]
    pub team_member: Option<Value>,
    /// For `member.updated`, `member.role_changed`, `member.deprovisioned`, `member.reprovisioned` and
    /// `team.renamed`: each field that changed, as `{from, to}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub changes: Option<Value>,
    /// `team.member_*`: the source the change gave the member in the team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::directory_sync::teams::ShownSource>)]
    pub source_added: Option<Value>,
    /// `team.member_*`: the source the change took from the member in the team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::directory_sync::teams::ShownSource>)]
    pub source_removed: Option<Value>,
}

/// A team as the feed shows it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FeedTeam {
    id: String,
    name: String,
}

/// A member's membership of a team, as the feed shows it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FeedTeamMember {
    team_id: String,
    member_id: String,
    sources: Vec<crate::directory_sync::teams::ShownSource>,
}

impl From<ChangeRow> for Change {
    fn from(row: ChangeRow) -> Self {
        Change {
            position: row.position,
            workspace_id: row.workspace_id,
            kind: row.change_type,
            occurred_at: time_json(&row.occurred_at),
            cause: ShownCause {
                kind: row.cause_type,
                id: row.cause_id,
            },
            data: serde_json::from_str(&row.data).unwrap_or_default(),
        }
    }
}

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    /// The changes after the cursor, oldest first.
    pub data: Vec<Change>,
    pub list_metadata: FeedMetadata,
}

/// Where to read on from.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedMetadata {
    /// Pass as `?after=` to read on: the last change of this page, or the cursor asked for when there
    /// is nothing newer yet. Never null once the feed has a change, so a reader keeps polling with it.
    #[schema(required = true)]
    pub after: Option<String>,
    /// Whether more changes are ready now (read again at once) or this page reached the end (poll).
    pub has_more: bool,
}

/// Why a page of the feed cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("after: not a cursor of this feed")]
    InvalidCursor,
    /// Retention pruned changes after the cursor: the reader lists the current state again, then reads
    /// on from `resume_after`.
    #[error("changes after this cursor were pruned (ROLLCALL_EVENT_RETENTION): list the current state again, then read on from after={resume_after}")]
    Gone { resume_after: String },
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// A workspace's changes after position `after` (from the oldest kept when `None`), at most `limit`.
pub fn workspace_page(
    conn: &mut DbConnection,
    workspace_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<FeedPage, FeedError> {
    let after = after
        .map(|a| a.parse::<i64>().ok().filter(|n| *n >= 0))
        .map(|a| a.ok_or(FeedError::InvalidCursor))
        .transpose()?;
    let last: i64 = crate::on_backend!(conn, |c| workspaces::table
        .find(workspace_id)
        .select(workspaces::change_position)
        .first(c))?;
    let oldest: Option<i64> = crate::on_backend!(conn, |c| changes::table
        .filter(changes::workspace_id.eq(workspace_id))
        .select(diesel::dsl::min(changes::position))
        .first(c))?;
    let from = match after {
        Some(after) if after > last => return Err(FeedError::InvalidCursor),
        // Pruned past the cursor: position after + 1 is gone (or every change is).
        Some(after) if after < last && oldest.is_none_or(|o| o > after + 1) => {
            let resume = oldest.map_or(last, |o| o - 1);
            return Err(FeedError::Gone {
                resume_after: resume.to_string(),
            });
        }
        Some(after) => after,
        None => oldest.map_or(last, |o| o - 1),
    };
    let rows: Vec<ChangeRow> = crate::on_backend!(conn, |c| changes::table
        .filter(changes::workspace_id.eq(workspace_id))
        .filter(changes::position.gt(from))
        .order(changes::position)
        .limit(limit + 1)
        .select(ChangeRow::as_select())
        .load(c))?;
    let rows = rows
        .into_iter()
        .map(|row| (row.position.to_string(), row))
        .collect();
    Ok(page(rows, limit, Some(from.to_string())))
}

/// A page from rows fetched with `limit + 1`, each with its cursor; `asked` is the cursor asked for.
fn page(mut rows: Vec<(String, ChangeRow)>, limit: i64, asked: Option<String>) -> FeedPage {
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let after = rows.last().map(|(cursor, _)| cursor.clone()).or(asked);
    FeedPage {
        data: rows.into_iter().map(|(_, row)| Change::from(row)).collect(),
        list_metadata: FeedMetadata { after, has_more },
    }
}

/// A change read across workspaces on PostgreSQL, with its writing transaction's id.
#[derive(QueryableByName)]
struct Ordered {
    #[diesel(embed)]
    change: ChangeRow,
    #[diesel(sql_type = diesel::sql_types::Text)]
    txid: String,
}

/// A cursor of the feed across workspaces: the writing transaction's id (0 on SQLite) and the change's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    txid: u64,
    id: i64,
}

impl Cursor {
    fn parse(text: &str) -> Result<Cursor, FeedError> {
        let (txid, id) = match text.split_once('.') {
            Some((txid, id)) => (txid.parse().ok(), id.parse().ok()),
            None => (Some(0), text.parse().ok()),
        };
        match (txid, id) {
            (Some(txid), Some(id)) if id >= 0 => Ok(Cursor { txid, id }),
            _ => Err(FeedError::InvalidCursor),
        }
    }

    fn shown(self) -> String {
        if self.txid == 0 {
            self.id.to_string()
        } else {
            format!("{}.{}", self.txid, self.id)
        }
    }

    fn of(txid: &str, id: i64) -> Cursor {
        Cursor {
            txid: txid.parse().unwrap_or(0),
            id,
        }
    }
}

/// Every workspace's changes after the cursor (from the oldest kept when `None`), at most `limit`.
pub fn all_workspaces_page(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<FeedPage, FeedError> {
    let after = after.map(Cursor::parse).transpose()?;
    if let (Some(after), Some(pruned)) = (after, pruned_through(conn)?) {
        if after < pruned {
            return Err(FeedError::Gone {
                resume_after: pruned.shown(),
            });
        }
    }
    let from = after.unwrap_or(Cursor { txid: 0, id: 0 });
    let asked = after.map(Cursor::shown);
    match conn {
        DbConnection::Postgresql(pg) => {
            let horizon = feed_horizon_pg(pg)?;
            let rows: Vec<Ordered> = diesel::sql_query(
                "SELECT id, workspace_id, position, occurred_at, change_type, subject_id, data, \
                 cause_type, cause_id, txid::text AS txid FROM changes \
                 WHERE (txid, id) > ($1::text::xid8, $2) AND txid < $3::text::xid8 \
                 ORDER BY txid, id LIMIT $4",
            )
            .bind::<diesel::sql_types::Text, _>(from.txid.to_string())
            .bind::<diesel::sql_types::BigInt, _>(from.id)
            .bind::<diesel::sql_types::Text, _>(horizon)
            .bind::<diesel::sql_types::BigInt, _>(limit + 1)
            .load(pg)?;
            let rows = rows
                .into_iter()
                .map(|o| (Cursor::of(&o.txid, o.change.id).shown(), o.change))
                .collect();
            Ok(page(rows, limit, asked))
        }
        DbConnection::Sqlite(c) => {
            let rows: Vec<ChangeRow> = changes::table
                .filter(changes::id.gt(from.id))
                .order(changes::id)
                .limit(limit + 1)
                .select(ChangeRow::as_select())
                .load(c)?;
            let rows = rows
                .into_iter()
                .map(|row| (row.id.to_string(), row))
                .collect();
            Ok(page(rows, limit, asked))
        }
    }
}

/// How far retention has pruned the feed across workspaces.
fn pruned_through(conn: &mut DbConnection) -> QueryResult<Option<Cursor>> {
    let row: Option<(String, i64)> = crate::on_backend!(conn, |c| change_feed_pruned::table
        .select((
            change_feed_pruned::through_txid,
            change_feed_pruned::through_id
        ))
        .first(c)
        .optional())?;
    Ok(row.map(|(txid, id)| Cursor::of(&txid, id)))
}

/// Records that retention pruned the feed through `through` (kept when it already reached further).
pub(super) fn mark_pruned(conn: &mut DbConnection, through: (String, i64)) -> QueryResult<()> {
    let cursor = Cursor::of(&through.0, through.1);
    if pruned_through(conn)?.is_some_and(|p| p >= cursor) {
        return Ok(());
    }
    let values = (
        change_feed_pruned::through_txid.eq(&through.0),
        change_feed_pruned::through_id.eq(through.1),
    );
    crate::on_backend!(conn, |c| diesel::insert_into(change_feed_pruned::table)
        .values((change_feed_pruned::id.eq(1), values))
        .on_conflict(change_feed_pruned::id)
        .do_update()
        .set(values)
        .execute(c))?;
    Ok(())
}
