//! PostgreSQL's planner statistics follow each table that grows, not only the tables' sum: a table that
//! was empty when last analysed (team sources before the first group link) is analysed again once it
//! fills, however many rows the other tables hold; else lookups of it by lists of ids scan it whole.

use crate::helpers::{Backend, TestDatabase};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Double;
use rollcall::db::{Database, DbConnection};

/// What the planner believes `table` holds.
fn planned_rows(db: &Database, table: &str) -> f64 {
    let mut conn = db.conn().unwrap();
    let DbConnection::Postgresql(pg) = &mut *conn else {
        panic!("a PostgreSQL connection")
    };
    diesel::select(diesel::dsl::sql::<Double>(&format!(
        "(SELECT GREATEST(reltuples, 0)::float8 FROM pg_class \
         WHERE relname = '{table}' AND relnamespace = current_schema()::regnamespace)"
    )))
    .get_result(pg)
    .unwrap()
}

/// Runs `sql`.
fn run(db: &Database, sql: &str) {
    let mut conn = db.conn().unwrap();
    let DbConnection::Postgresql(pg) = &mut *conn else {
        panic!("a PostgreSQL connection")
    };
    pg.batch_execute("SELECT pg_stat_force_next_flush()")
        .unwrap();
    pg.batch_execute(sql).unwrap();
}

#[test]
fn a_table_that_fills_is_analysed_while_larger_tables_hold_more() {
    let database = TestDatabase::new(Backend::Postgres);
    let db = database.open();
    run(
        &db,
        "INSERT INTO workspaces (id, name, plan, organization_id, directory_sync_enabled, \
           default_role, created_at, updated_at, change_position, role_source, default_role_slug) \
         VALUES ('ws_1', 'Acme', 'growth', 'org_1', true, 'viewer', now(), now(), 0, \
           'group_mappings', 'member'); \
         INSERT INTO members (id, workspace_id, email, email_key, role, status, managed_by, \
           created_at, updated_at) \
         SELECT 'mem_' || n, 'ws_1', n || '@example.com', n || '@example.com', 'viewer', 'active', \
           'manual', now(), now() FROM generate_series(1, 10000) n; \
         INSERT INTO teams (id, workspace_id, name, name_key, created_at, updated_at) \
         VALUES ('team_1', 'ws_1', 'Engineering', 'engineering', now(), now());",
    );
    {
        let mut conn = db.conn().unwrap();
        rollcall::db::analyze(&mut conn).unwrap();
    }
    assert_eq!(planned_rows(&db, "members"), 10000.0);
    assert_eq!(planned_rows(&db, "team_member_sources"), 0.0);
    db.keep_statistics_current(0);

    // 5,000 sources: half as many rows as the members, and over 128 KiB.
    run(
        &db,
        "INSERT INTO team_member_sources (team_id, member_id, source_type, group_id, created_at) \
         SELECT 'team_1', 'mem_' || n, 'manual', '', now() FROM generate_series(1, 5000) n;",
    );
    db.keep_statistics_current(5000);
    assert_eq!(planned_rows(&db, "team_member_sources"), 5000.0);

    // Rows deleted since (the table no larger): nothing analysed again.
    run(
        &db,
        "DELETE FROM team_member_sources WHERE member_id IN \
         (SELECT 'mem_' || n FROM generate_series(1, 500) n);",
    );
    db.keep_statistics_current(1000);
    assert_eq!(planned_rows(&db, "team_member_sources"), 5000.0);

    // Rows written without being counted (an admin's link of a large group), then a pull about to
    // look them up: refreshed on asking.
    run(
        &db,
        "INSERT INTO team_member_sources (team_id, member_id, source_type, group_id, created_at) \
         SELECT 'team_1', 'mem_' || n, 'directory_group', 'group_1', now() \
         FROM generate_series(1, 10000) n;",
    );
    db.refresh_outgrown_statistics();
    assert_eq!(planned_rows(&db, "team_member_sources"), 14500.0);
}
