//! Two writers of one SQLite file (the service and the command line beside it are two processes, each
//! with its own connection): a write that reads before it writes waits for the other's commit instead of
//! failing with `database is locked`.

use crate::helpers::{Backend, TestDatabase};
use diesel::prelude::*;
use rollcall::db::schema::workspaces;
use rollcall::db::DbError;
use std::sync::mpsc;
use std::time::Duration;

fn workspace_count(conn: &mut rollcall::db::DbConnection) -> Result<i64, DbError> {
    Ok(workspaces::table.count().get_result(conn)?)
}

fn add_workspace(conn: &mut rollcall::db::DbConnection, id: &str) -> Result<(), DbError> {
    diesel::sql_query(format!(
        "INSERT INTO workspaces (id, name, plan, organization_id, directory_sync_enabled, \
           default_role, created_at, updated_at, change_position, role_source, default_role_slug) \
         VALUES ('{id}', '{id}', 'growth', 'org_{id}', false, 'viewer', \
           '2026-12-07 00:00:00', '2026-12-07 00:00:00', 0, 'group_mappings', 'member')"
    ))
    .execute(conn)?;
    Ok(())
}

/// Which of the database's writes the reading writer uses.
#[derive(Clone, Copy)]
enum Via {
    /// An admin's or the applier's (`Database::write`).
    Write,
    /// Intake's, which a SCIM write uses: it reads the directory's clock before it writes.
    Deliveries,
}

#[test]
fn a_write_that_reads_first_waits_for_the_other_writer_instead_of_failing() {
    reads_first_then_writes(Via::Write);
}

#[test]
fn a_delivery_write_that_reads_first_waits_for_the_other_writer_instead_of_failing() {
    reads_first_then_writes(Via::Deliveries);
}

fn reads_first_then_writes(via: Via) {
    let database = TestDatabase::new(Backend::Sqlite);
    let (service, command_line) = (database.open(), database.open());
    let (read_done, wait_read) = mpsc::channel();
    let (other_done, wait_other) = mpsc::channel();
    let other = std::thread::spawn(move || {
        wait_read.recv().unwrap();
        let written = service.write(|conn| add_workspace(conn, "ws_service"));
        other_done.send(()).unwrap();
        written
    });
    let work = |conn: &mut rollcall::db::DbConnection| {
        // Read first, as a command checks what it is about to change.
        let before = workspace_count(conn)?;
        read_done.send(()).unwrap();
        // Give the other writer the time to commit, if it can: begun as a reader, this transaction
        // could then no longer write.
        let _ = wait_other.recv_timeout(Duration::from_secs(1));
        add_workspace(conn, "ws_command_line")?;
        Ok::<_, DbError>(before)
    };
    let written = match via {
        Via::Write => command_line.write(work),
        Via::Deliveries => command_line.write_deliveries(work),
    };
    assert_eq!(written.unwrap(), 0);
    other.join().unwrap().unwrap();
    let after = database.open().read(workspace_count).unwrap();
    assert_eq!(after, 2);
}
