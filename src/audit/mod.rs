//! The audit log (rule 17): every change to members, teams, links, mappings and roles, with its cause.

pub mod feed;

use crate::db::models::NewAuditEntry;
use crate::db::schema::audit_log;
use crate::db::DbConnection;
use crate::domain::CauseKind;
use crate::workos::timestamp;
use diesel::prelude::*;
use serde::Serialize;

/// The ids of the log entries a write to a SCIM directory of Rollcall's makes start with this (a broker's
/// start with `event_` or `wh_`), so that what they change names SCIM as its cause.
pub const SCIM_EVENT_PREFIX: &str = "scim_event_";

/// What made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A broker webhook, by its event id.
    Event(String),
    /// A write to a SCIM directory of Rollcall's, by the id of the log entry it made.
    Scim(String),
    /// A full pull, by its run id.
    SyncRun(String),
    /// A request made with a stored API token, by its token id.
    ApiToken(String),
    /// A request made with the bootstrap operator token from the configuration.
    BootstrapOperator,
}

impl Cause {
    /// The cause of applying the logged event `id`: a broker's event, or a SCIM write (whose entries
    /// Rollcall names, [`SCIM_EVENT_PREFIX`]).
    pub fn of_event(id: &str) -> Cause {
        if id.starts_with(SCIM_EVENT_PREFIX) {
            Cause::Scim(id.to_string())
        } else {
            Cause::Event(id.to_string())
        }
    }

    /// The cause's kind and id as stored.
    pub fn parts(&self) -> (&'static str, &str) {
        let (kind, id) = match self {
            Cause::Event(id) => (CauseKind::Event, id.as_str()),
            Cause::Scim(id) => (CauseKind::Scim, id.as_str()),
            Cause::SyncRun(id) => (CauseKind::SyncRun, id.as_str()),
            Cause::ApiToken(id) => (CauseKind::ApiToken, id.as_str()),
            Cause::BootstrapOperator => (CauseKind::Operator, "bootstrap"),
        };
        (kind.as_str(), id)
    }
}

/// One change to write to the audit log.
pub struct AuditRecord<'a> {
    pub workspace_id: &'a str,
    pub action: &'a str,
    pub subject_type: &'a str,
    pub subject_id: &'a str,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Writes an audit entry in the caller's transaction.
pub fn record(conn: &mut DbConnection, cause: &Cause, record: AuditRecord<'_>) -> QueryResult<()> {
    insert_entries(conn, &[entry(cause, record, timestamp::now())])?;
    Ok(())
}

/// The stored form of one audit entry.
pub fn entry(
    cause: &Cause,
    record: AuditRecord<'_>,
    occurred_at: timestamp::Timestamp,
) -> NewAuditEntry {
    let (cause_type, cause_id) = cause.parts();
    NewAuditEntry {
        workspace_id: record.workspace_id.to_string(),
        occurred_at,
        action: record.action.to_string(),
        subject_type: record.subject_type.to_string(),
        subject_id: record.subject_id.to_string(),
        before: record.before.map(|v| v.to_string()),
        after: record.after.map(|v| v.to_string()),
        cause_type: cause_type.to_string(),
        cause_id: cause_id.to_string(),
    }
}

/// Inserts audit entries in batches, and the changes they make into the change feed; returns how many
/// entries.
pub fn insert_entries(conn: &mut DbConnection, rows: &[NewAuditEntry]) -> QueryResult<usize> {
    use diesel::sql_types::{Nullable, Text, Timestamp};
    feed::record(conn, rows)?;
    crate::insert_rows!(
        conn,
        audit_log,
        rows,
        [
            workspace_id: Text = "text",
            occurred_at: Timestamp = "timestamp",
            action: Text = "text",
            subject_type: Text = "text",
            subject_id: Text = "text",
            before: Nullable<Text> = "text",
            after: Nullable<Text> = "text",
            cause_type: Text = "text",
            cause_id: Text = "text",
        ],
        "",
        |c, chunk| diesel::insert_into(audit_log::table).values(chunk).execute(c)?
    )
}

/// A value as JSON for the audit log.
pub fn json<T: Serialize>(value: &T) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}
