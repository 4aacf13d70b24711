//! A pull holds its directory by a lease on its run, not by a database session: a run whose process
//! stopped is ended once its lease runs out, and no second run of a directory starts while one holds it.

use crate::helpers::{Backend, TestDatabase};
use diesel::prelude::*;
use rollcall::db::models::SyncRunRow;
use rollcall::db::schema::sync_runs;
use rollcall::db::{Database, DbError};
use rollcall::sync_runs::lease::{self, ClaimError};
use rollcall::workos::timestamp;

crate::on_both_backends!(backend: a_run_is_held_by_its_lease_until_it_runs_out);

fn run(id: &str, directory: &str, status: &str, lease_seconds: i64) -> SyncRunRow {
    let now = timestamp::now();
    SyncRunRow {
        id: id.into(),
        directory_id: directory.into(),
        trigger: rollcall::domain::RunTrigger::OnDemand,
        force: false,
        status: status.parse().unwrap(),
        counts: None,
        error: None,
        requests: 0,
        created_at: now,
        started_at: Some(now),
        finished_at: None,
        phase: rollcall::domain::RunPhase::Listing,
        users_listed: 0,
        lease_until: Some(now + chrono::TimeDelta::seconds(lease_seconds)),
    }
}

fn insert(db: &Database, runs: &[SyncRunRow]) {
    db.write(|c| {
        for run in runs {
            diesel::insert_into(sync_runs::table)
                .values(run)
                .execute(c)?;
        }
        Ok::<_, DbError>(())
    })
    .unwrap();
}

fn status(db: &Database, id: &str) -> (String, Option<String>) {
    db.read(|c| {
        sync_runs::table
            .find(id)
            .select((sync_runs::status, sync_runs::error))
            .first(c)
            .map_err(DbError::from)
    })
    .unwrap()
}

async fn a_run_is_held_by_its_lease_until_it_runs_out(backend: Backend) {
    let database = TestDatabase::new(backend);
    let db = database.open();
    insert(
        &db,
        &[
            run("run_stopped", "directory_a", "running", -5),
            run("run_live", "directory_b", "running", 60),
            run("run_queued_long_ago", "directory_c", "queued", -5),
        ],
    );

    // A second run of a directory whose run holds a live lease does not start.
    insert(&db, &[run("run_second_b", "directory_b", "queued", 60)]);
    let refused = lease::claim(&db, "run_second_b", "directory_b", timestamp::now());
    assert!(matches!(refused, Err(ClaimError::Taken)), "{refused:?}");
    assert_eq!(status(&db, "run_live").0, "running");

    // Once leases run out, the runs are ended as interrupted; the live one is left alone.
    assert_eq!(lease::end_interrupted_runs(&db, false).unwrap(), 2);
    let (stopped, why) = status(&db, "run_stopped");
    assert_eq!(stopped, "failed");
    assert!(why.unwrap_or_default().starts_with("interrupted"));
    assert_eq!(status(&db, "run_queued_long_ago").0, "failed");
    assert_eq!(status(&db, "run_live").0, "running");

    // A renewed lease keeps a run; a directory whose run was ended can be pulled again.
    assert_eq!(lease::renew(&db, &["run_live".into()]).unwrap(), 1);
    insert(&db, &[run("run_again_a", "directory_a", "queued", 60)]);
    lease::claim(&db, "run_again_a", "directory_a", timestamp::now()).expect("directory a is free");
    assert_eq!(status(&db, "run_again_a").0, "running");
}
