//! Retention of the change feed: changes older than `ROLLCALL_EVENT_RETENTION` are deleted a batch at a
//! time, and how far the feed across workspaces was pruned is kept, so a reader behind it is told to list
//! again (410) rather than skip what was pruned.

use crate::db::schema::changes;
use crate::db::{Database, DbConnection, DbError};
use crate::workos::timestamp::Timestamp;
use diesel::prelude::*;

/// Changes deleted in one transaction.
pub const BATCH: i64 = 500;

/// Deletes up to one batch of the changes that occurred before `cutoff`; returns how many.
pub fn prune_batch(db: &Database, cutoff: Timestamp) -> Result<usize, DbError> {
    db.write(|conn| {
        let old = oldest(conn, cutoff)?;
        let Some(through) = old
            .iter()
            .max_by_key(|(txid, id)| (txid.parse::<u64>().unwrap_or(0), *id))
        else {
            return Ok(0);
        };
        super::feed::mark_pruned(conn, through.clone())?;
        let ids: Vec<i64> = old.iter().map(|(_, id)| *id).collect();
        let deleted = crate::on_backend!(conn, |c| diesel::delete(
            changes::table.filter(changes::id.eq_any(&ids))
        )
        .execute(c))?;
        Ok::<_, DbError>(deleted)
    })
}

/// The oldest changes before `cutoff`, each with its writing transaction's id (`0` on SQLite).
fn oldest(conn: &mut DbConnection, cutoff: Timestamp) -> QueryResult<Vec<(String, i64)>> {
    match conn {
        DbConnection::Postgresql(pg) => {
            #[derive(QueryableByName)]
            struct Old {
                #[diesel(sql_type = diesel::sql_types::Text)]
                txid: String,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                id: i64,
            }
            let rows: Vec<Old> = diesel::sql_query(
                "SELECT txid::text AS txid, id FROM changes WHERE occurred_at < $1 \
                 ORDER BY occurred_at LIMIT $2",
            )
            .bind::<diesel::sql_types::Timestamp, _>(cutoff)
            .bind::<diesel::sql_types::BigInt, _>(BATCH)
            .load(pg)?;
            Ok(rows.into_iter().map(|o| (o.txid, o.id)).collect())
        }
        DbConnection::Sqlite(c) => {
            let ids: Vec<i64> = changes::table
                .filter(changes::occurred_at.lt(cutoff))
                .order(changes::occurred_at)
                .select(changes::id)
                .limit(BATCH)
                .load(c)?;
            Ok(ids.into_iter().map(|id| ("0".to_string(), id)).collect())
        }
    }
}
