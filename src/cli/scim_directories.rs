//! `rollcall scim-directories`: create a workspace's SCIM directory, list them, and create and revoke
//! their bearer tokens, directly on the database, as the admin API does (`…/scim-directories`).

use super::webhook_endpoints::WorkspaceArg;
use crate::access::Caller;
use crate::audit::Cause;
use crate::db::Database;
use crate::scim::directories::{self, NewScimDirectory, NewScimToken, ScimDirectoryView};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ScimDirectoryCommand {
    /// Create a SCIM directory for the workspace; print its first bearer token once (to stdout; its
    /// base path and the rest go to stderr).
    ///
    /// The identity provider's SCIM base URL is the service's public address followed by the base
    /// path, `/scim/v2/{directory}`; it authenticates with `Authorization: Bearer {token}`.
    Create {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// What the directory is called on the screens ("SCIM" when absent).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the workspace's SCIM directories with their users, groups and tokens.
    List {
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
    /// Create another token for a directory (a rotation: the others keep working until revoked); print
    /// it once, to stdout.
    CreateToken {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// The SCIM directory (directory_…).
        directory: String,
        /// What the token is for.
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a directory's token: the identity provider's next request with it is refused.
    RevokeToken {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// The SCIM directory (directory_…).
        directory: String,
        /// The token (scimtok_…).
        token: String,
    },
}

/// Runs a SCIM directory command as the operator on the database of `DATABASE_URL`.
pub fn run(command: ScimDirectoryCommand, db: &Database) -> anyhow::Result<()> {
    let operator = Caller::Operator {
        cause: Cause::BootstrapOperator,
    };
    match command {
        ScimDirectoryCommand::Create { workspace, name } => {
            let created =
                directories::create(db, &operator, workspace.id(), NewScimDirectory { name })?;
            eprintln!(
                "created SCIM directory {} at {}; its bearer token is shown only this once:",
                created.directory.id, created.directory.base_path
            );
            println!("{}", created.token.secret);
        }
        ScimDirectoryCommand::List { workspace } => {
            let list = directories::list(db, &operator, workspace.id())?;
            if list.is_empty() {
                eprintln!("no SCIM directories in {}", workspace.id());
            }
            for directory in &list {
                println!("{}", listed(directory));
            }
        }
        ScimDirectoryCommand::CreateToken {
            workspace,
            directory,
            name,
        } => {
            let created = directories::create_token(
                db,
                &operator,
                workspace.id(),
                &directory,
                NewScimToken { name },
            )?;
            eprintln!(
                "created token {} for {directory}; shown only this once:",
                created.token.id
            );
            println!("{}", created.secret);
        }
        ScimDirectoryCommand::RevokeToken {
            workspace,
            directory,
            token,
        } => {
            directories::revoke_token(db, &operator, workspace.id(), &directory, &token)?;
            eprintln!("revoked token {token} of {directory}");
        }
    }
    Ok(())
}

/// A directory and its tokens, a line each.
fn listed(directory: &ScimDirectoryView) -> String {
    let mut lines = vec![format!(
        "{}  {}  {} users, {} groups  {}",
        directory.id, directory.base_path, directory.users, directory.groups, directory.name
    )];
    for token in &directory.tokens {
        let state = match (&token.revoked_at, &token.last_used_at) {
            (Some(at), _) => format!("revoked {at}"),
            (None, Some(at)) => format!("last used {at}"),
            (None, None) => "never used".to_string(),
        };
        lines.push(format!("  {}  {state}  {}", token.id, token.name));
    }
    lines.join("\n")
}
