//! `rollcall token`: create, list and revoke API tokens directly on the database, as the admin API does.

use crate::db::models::ApiTokenRow;
use crate::db::{Database, DbConnection};
use crate::tokens::{check_name, create_token, revoke_token, token_expiry, unrevoked_tokens};
use crate::workos::timestamp::{self, Timestamp};
use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it once: an operator token, or with --workspace a workspace admin's.
    ///
    /// The token goes to stdout, everything else to stderr; only its SHA-256 hash is stored.
    Create {
        /// The workspace (ws_…) the token administers; without it, an operator token.
        #[arg(long)]
        workspace: Option<String>,
        /// A name to tell the token apart by: 1 to 200 characters, without control characters.
        #[arg(long)]
        name: Option<String>,
        /// How long the token lasts, such as 30d, 12h or 90m (1s to 3650d); without it, until revoked.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// List the tokens that are not revoked: the operators', or with --workspace a workspace's admins'.
    ///
    /// Shows each token's id, whether it is live or expired, when it was created, last used (to the
    /// minute) and expires, and its name; never the token itself.
    List {
        /// The workspace (ws_…) whose admin tokens to list; without it, the operator tokens.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Revoke a token, an operator's or a workspace admin's, by its id: it is refused from then on.
    Revoke {
        /// The token's id (tok_…), as `rollcall token list` shows it.
        id: String,
    },
}

/// Runs a token command on the database of `DATABASE_URL`, migrating it first.
pub fn run(command: TokenCommand, db: &Database) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            workspace,
            name,
            expires_in,
        } => {
            let name = name
                .as_deref()
                .map(check_name)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e))?;
            let expires_at = expires_in
                .as_deref()
                .map(|text| token_expiry(text, timestamp::now()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
            // Looked up before the write, whose first statement then takes SQLite's write lock (waiting for
            // a running server's writes) rather than finding its read outdated. Workspaces are never deleted.
            db.read(|conn| ensure_workspace(conn, workspace.as_deref()))?;
            let (row, token) = db.write(|conn| {
                Ok::<_, anyhow::Error>(create_token(
                    conn,
                    workspace.as_deref(),
                    name.as_deref(),
                    expires_at,
                )?)
            })?;
            let expiry = match row.expires_at {
                Some(at) => format!(", expiring {}", when(Some(at))),
                None => String::new(),
            };
            eprintln!(
                "created {} token {}{expiry}; it is shown only this once:",
                kind(workspace.as_deref()),
                row.id
            );
            println!("{token}");
            Ok(())
        }
        TokenCommand::List { workspace } => {
            let rows = db.read(|conn| {
                ensure_workspace(conn, workspace.as_deref())?;
                Ok::<_, anyhow::Error>(unrevoked_tokens(conn, workspace.as_deref(), None)?)
            })?;
            if rows.is_empty() {
                eprintln!("no {} tokens", kind(workspace.as_deref()));
                return Ok(());
            }
            println!(
                "{:<30}  {:<7}  {:<20}  {:<20}  {:<20}  NAME",
                "ID", "STATE", "CREATED", "LAST USED", "EXPIRES"
            );
            let now = timestamp::now();
            for row in &rows {
                println!("{}", listed(row, now));
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let revoked =
                db.write(|conn| Ok::<_, anyhow::Error>(revoke_token(conn, &id, None)?))?;
            if !revoked {
                anyhow::bail!("no token {id}, or it is already revoked");
            }
            eprintln!("revoked token {id}; it is refused from now on");
            Ok(())
        }
    }
}

/// What tokens of `workspace` are called.
fn kind(workspace: Option<&str>) -> &'static str {
    if workspace.is_some() {
        "workspace admin"
    } else {
        "operator"
    }
}

/// Fails unless `workspace`, when given, exists.
fn ensure_workspace(conn: &mut DbConnection, workspace: Option<&str>) -> anyhow::Result<()> {
    let Some(ws) = workspace else {
        return Ok(());
    };
    let found = crate::workspaces::exists(conn, ws).context("looking the workspace up")?;
    anyhow::ensure!(found, "no workspace {ws}");
    Ok(())
}

/// A time to the second in UTC, or `-`.
fn when(at: Option<Timestamp>) -> String {
    at.map_or_else(
        || "-".to_string(),
        |at| {
            at.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        },
    )
}

/// One line of `token list`.
fn listed(row: &ApiTokenRow, now: Timestamp) -> String {
    let state = if row.is_live(now) { "live" } else { "expired" };
    format!(
        "{:<30}  {state:<7}  {:<20}  {:<20}  {:<20}  {}",
        row.id,
        when(Some(row.created_at)),
        when(row.last_used_at),
        when(row.expires_at),
        row.name.as_deref().unwrap_or("-"),
    )
}
