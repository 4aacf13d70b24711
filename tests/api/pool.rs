//! The connection pool hands out only connections that work.

use crate::helpers::{postgres_url, Backend, TestDatabase};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Integer};
use rollcall::db::{DbConnection, DbError};

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// A pooled PostgreSQL connection whose server session ended while it sat in the pool (a server restart,
/// an idle timeout, an operator's `pg_terminate_backend`) is replaced, not handed out.
#[test]
fn a_connection_the_server_closed_is_not_handed_out() {
    let database = TestDatabase::new(Backend::Postgres);
    let db = rollcall::db::Database::connect(database.target.clone(), 1).unwrap();
    let pid = {
        let mut conn = db.conn().unwrap();
        let DbConnection::Postgresql(pg) = &mut *conn else {
            panic!("a PostgreSQL connection")
        };
        diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result::<Pid>(pg)
            .unwrap()
            .pid
    };
    let mut admin = diesel::PgConnection::establish(&postgres_url()).unwrap();
    let terminated: bool = diesel::select(diesel::dsl::sql::<Bool>(&format!(
        "pg_terminate_backend({pid})"
    )))
    .get_result(&mut admin)
    .unwrap();
    assert!(terminated);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let answered = db.read(|c| {
        diesel::sql_query("SELECT 1 AS pid")
            .get_result::<Pid>(c)
            .map_err(DbError::from)
    });
    assert_eq!(answered.map(|p| p.pid).ok(), Some(1));
}
