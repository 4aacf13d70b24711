//! `rollcall tail --once`: one catch-up of the Events API tail from the command line, on the database
//! of `DATABASE_URL` with `WORKOS_API_KEY`, applying what it stored before it exits.

use crate::broker::BrokerClient;
use crate::event_tail::place::TailLease;
use crate::event_tail::{catch_up, TailError};
use crate::intake::applier::{backlog, Applier, ApplierOptions, RetryPolicy};
use crate::metrics::Metrics;
use anyhow::Context;
use clap::Args;
use indicatif::ProgressBar;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Catch up once and exit (`rollcall serve` runs the tail continuously).
    #[arg(long, required = true)]
    pub once: bool,
}

/// Reads every event after the stored cursor, stores and applies them, and prints what it did.
pub async fn run(_args: TailArgs) -> anyhow::Result<()> {
    let settings = super::load_settings()?;
    anyhow::ensure!(
        settings.workos_api_key.is_some(),
        "setting WORKOS_API_KEY: the Events API needs the broker's API key"
    );
    let db = crate::db::Database::connect(settings.database.clone(), 2)
        .with_context(|| format!("opening {}", settings.database.display()))?;
    db.migrate().context("migrating the database")?;
    let target = settings.database.clone();
    let lease = tokio::task::spawn_blocking(move || TailLease::for_command_line(&target)).await??;
    let Some(mut lease) = lease else {
        anyhow::bail!(
            "another Rollcall instance runs the Events API tail on {} (on SQLite: a `rollcall serve` \
             holds the file); it catches up on its own, so nothing is done here. Stop it to catch up \
             from the command line",
            settings.database.display()
        );
    };
    let client = BrokerClient::new(crate::startup::broker_settings(&settings))?;
    let metrics = Metrics::default();
    let applier = Applier::start(
        db.clone(),
        ApplierOptions {
            policy: RetryPolicy {
                max_attempts: settings.apply_max_attempts,
                ..RetryPolicy::default()
            },
            metrics: metrics.clone(),
            ..ApplierOptions::default()
        },
    );
    let wakeup = applier.wakeup();
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("reading the Events API…");
    let caught_up = catch_up(&db, &client, &mut lease, &metrics, |done| {
        bar.set_message(format!(
            "{} events read in {} pages, {} new",
            done.fetched, done.pages, done.stored
        ));
        wakeup.notify();
    })
    .await;
    let done = match caught_up {
        Ok(done) => done,
        Err(e @ (TailError::NotStarted | TailError::CursorLost(_))) => {
            bar.finish_and_clear();
            applier.stop();
            anyhow::bail!(
                "{e}. `rollcall serve` with WORKOS_API_KEY starts the tail over with a full pull of \
                 every active directory; a catch-up from the command line only reads on from a place"
            );
        }
        Err(e) => {
            bar.finish_and_clear();
            applier.stop();
            return Err(e)
                .context("catching up; the cursor stays where the last stored page left it");
        }
    };
    bar.set_message(format!(
        "{} events read in {} pages, {} new; applying…",
        done.fetched, done.pages, done.stored
    ));
    loop {
        let waiting = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || db.read(backlog)).await??
        };
        if waiting.waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bar.finish_and_clear();
    tokio::task::spawn_blocking(move || applier.stop()).await?;
    println!(
        "caught up: {} events read in {} pages, {} new ones stored and applied (the others had come by webhook)",
        done.fetched, done.pages, done.stored
    );
    Ok(())
}
