//! The `rollcall` command line.

#[cfg(feature = "dev-tools")]
pub mod demo;
pub mod replay;
pub mod resync;
pub mod scim_directories;
pub mod tail;
pub mod token;
pub mod webhook_endpoints;

use crate::config::Settings;
use crate::db::Database;
use crate::startup::Application;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Keeps workspaces in step with each customer's identity provider through WorkOS Directory Sync.
///
/// Settings come from `serve`'s options, the environment and a `.env` file in the working directory;
/// `rollcall serve --help` lists every one of them, and `.env.example` shows them as variables.
#[derive(Debug, Parser)]
#[command(name = "rollcall", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database, then serve webhooks and the admin API until SIGTERM or Ctrl-C.
    ///
    /// Each option can also be set by its environment variable, or in `.env`; an option given on the
    /// command line wins. Durations take units, as in 90s, 30m, 1h30m or 30d; a plain number is seconds.
    Serve(Box<Settings>),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Pull one directory in full through a running server, with a progress bar, and print the counts.
    ///
    /// Calls POST /api/v1/directories/{ID}/resync with an operator token, then follows the run until it
    /// ends. Exits 0 when the run succeeded; non-zero when it failed or was held (rerun with --force to
    /// release a held run), or when the server refused or could not be reached. With --dry-run it applies
    /// nothing and prints what a pull would do now.
    Resync(resync::ResyncArgs),
    #[cfg(feature = "dev-tools")]
    Demo(demo::DemoArgs),
    /// Sign sample events with a fresh timestamp and post them, in order, to a running server.
    ///
    /// Each path is an event file or a folder; a folder's `*.json` files are sent in name order.
    Replay(replay::ReplayArgs),
    /// Serve a local broker: the pull API and signed webhooks, for development, demos and tests.
    #[cfg(feature = "dev-tools")]
    DevBroker(crate::dev_broker::DevBrokerArgs),
    /// Catch up once with the broker's Events API: store and apply every event after the stored cursor.
    ///
    /// Works on the database of DATABASE_URL with WORKOS_API_KEY, showing progress, and exits once what
    /// it stored is applied. Refuses while another instance runs the tail (on SQLite: while a `rollcall
    /// serve` holds the file), and before `rollcall serve` has started the tail with its first full pull.
    Tail(tail::TailArgs),
    /// Create, list and revoke API tokens, directly on the database of DATABASE_URL.
    ///
    /// The database is migrated first. The admin API does the same for workspace admin tokens at
    /// /api/v1/workspaces/{WS}/admin-tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Register, list, enable, disable and delete a workspace's outbound webhook endpoints, directly on
    /// the database of DATABASE_URL.
    ///
    /// The database is migrated first. The admin API does the same at
    /// /api/v1/workspaces/{WS}/webhook-endpoints, and shows each endpoint's delivery attempts.
    #[command(subcommand)]
    WebhookEndpoints(webhook_endpoints::EndpointCommand),
    /// Create a workspace's SCIM directories (an identity provider provisions straight into Rollcall),
    /// list them, and create and revoke their bearer tokens, directly on the database of DATABASE_URL.
    ///
    /// The database is migrated first. The admin API does the same at
    /// /api/v1/workspaces/{WS}/scim-directories.
    #[command(subcommand)]
    ScimDirectories(scim_directories::ScimDirectoryCommand),
}

/// Reads the command line, with `serve`'s settings from the environment where no option gives them. A
/// value that cannot be used is named by its setting's environment variable; any other mistake, or
/// `--help`, ends the process as clap does.
pub fn parse() -> Result<Cli, crate::config::ConfigError> {
    Settings::forget_blank_variables();
    Cli::try_parse().map_err(|error| {
        crate::config::ConfigError::from_clap(&error).unwrap_or_else(|| error.exit())
    })
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Replay(args) => replay::run(args).await,
        Command::Resync(args) => resync::run(args).await,
        #[cfg(feature = "dev-tools")]
        Command::Demo(args) => demo::run(args).await,
        Command::Tail(args) => tail::run(args).await,
        #[cfg(feature = "dev-tools")]
        Command::DevBroker(args) => crate::dev_broker::run(args).await,
        Command::Serve(settings) => {
            let settings = (*settings).checked()?;
            crate::telemetry::init(settings.log_format);
            Application::build(settings)?.run_until_stopped().await
        }
        Command::Migrate => {
            let settings = load_settings()?;
            let db = open_database(&settings)?;
            let applied = db.migrate()?;
            println!(
                "{} migration(s) applied to {}",
                applied.len(),
                settings.database.display()
            );
            Ok(())
        }
        Command::Token(command) => {
            let (_, db) = migrated_database()?;
            token::run(command, &db)
        }
        Command::ScimDirectories(command) => {
            let (_, db) = migrated_database()?;
            scim_directories::run(command, &db)
        }
        Command::WebhookEndpoints(command) => {
            let (settings, db) = migrated_database()?;
            webhook_endpoints::run(command, &db, crate::outbound::address::Reach::of(&settings))
        }
    }
}

/// Opens the database of the settings for a command, saying which one when it cannot. One connection is
/// enough for a command's one statement at a time, and with a pool of one no connection is ever being
/// opened in the background: the process exiting during a PostgreSQL connect could crash it.
fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    Database::connect(settings.database.clone(), 1)
        .with_context(|| format!("opening {}", settings.database.display()))
}

/// The settings and their database, migrated, for a command that works on the database directly.
fn migrated_database() -> anyhow::Result<(Settings, Database)> {
    let settings = load_settings()?;
    let db = open_database(&settings)?;
    db.migrate()?;
    Ok((settings, db))
}

/// Reads the settings and starts logging as they say.
pub fn load_settings() -> anyhow::Result<Settings> {
    let settings = Settings::from_env()?;
    crate::telemetry::init(settings.log_format);
    Ok(settings)
}

/// Expands files and folders into the event files to send, in order.
pub fn event_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading folder {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            anyhow::ensure!(
                !found.is_empty(),
                "folder {} holds no .json event files",
                path.display()
            );
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            anyhow::bail!("{} is neither a file nor a folder", path.display());
        }
    }
    Ok(files)
}
