//! `rollcall webhook-endpoints`: register, list, enable, disable and delete a workspace's outbound webhook
//! endpoints directly on the database, as the admin API does (`…/webhook-endpoints`).

use crate::access::Caller;
use crate::audit::Cause;
use crate::db::Database;
use crate::lists::Page;
use crate::outbound::address::Reach;
use crate::outbound::endpoints::{self, Endpoint, EndpointChange, NewEndpoint};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Register an endpoint and print its signing secret once (to stdout; the rest goes to stderr).
    ///
    /// It is sent every change of the workspace made from now on, of the --event-type given (or all),
    /// signed as Standard Webhooks with that secret.
    Create {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// Where changes are posted: https:// to a public address (http:// and private addresses
        /// only with ROLLCALL_OUTBOUND_ALLOW_PRIVATE=true).
        #[arg(long)]
        url: String,
        /// A change type to send, such as member.deprovisioned; repeat for more; none: every type.
        #[arg(long = "event-type", value_name = "TYPE")]
        event_types: Vec<String>,
        /// What the endpoint is for.
        #[arg(long)]
        description: Option<String>,
        /// The most changes sent in one message (1 to 100). 1, the default: each change is its own
        /// message. More: each message is a change.batch carrying up to this many changes in order,
        /// for receivers that must keep up with bursts.
        #[arg(long, value_name = "N", default_value_t = 1)]
        batch_size: i32,
    },
    /// List the workspace's endpoints: id, enabled or why not, the last position sent, failures, URL.
    List {
        #[command(flatten)]
        workspace: WorkspaceArg,
    },
    /// Enable an endpoint: sending goes on from where it stopped, its failures forgotten.
    Enable {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// The endpoint (we_…).
        id: String,
    },
    /// Disable an endpoint: nothing is sent until it is enabled again.
    Disable {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// The endpoint (we_…).
        id: String,
    },
    /// Delete an endpoint and its attempts.
    Delete {
        #[command(flatten)]
        workspace: WorkspaceArg,
        /// The endpoint (we_…).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct WorkspaceArg {
    /// The workspace (ws_…).
    #[arg(long)]
    workspace: String,
}

impl WorkspaceArg {
    /// The workspace's id.
    pub fn id(&self) -> &str {
        &self.workspace
    }
}

/// Runs an endpoint command as the operator on the database of `DATABASE_URL`.
pub fn run(command: EndpointCommand, db: &Database, reach: Reach) -> anyhow::Result<()> {
    let operator = Caller::Operator {
        cause: Cause::BootstrapOperator,
    };
    match command {
        EndpointCommand::Create {
            workspace,
            url,
            event_types,
            description,
            batch_size,
        } => {
            let new = NewEndpoint {
                url,
                description,
                event_types: Some(event_types),
                enabled: Some(true),
                batch_size: Some(batch_size),
            };
            let created = endpoints::create(db, &operator, &workspace.workspace, new, reach)?;
            eprintln!(
                "registered endpoint {} for {}; its signing secret is shown only this once:",
                created.endpoint.id, created.endpoint.url
            );
            println!("{}", created.secret);
        }
        EndpointCommand::List { workspace } => {
            let page = Page {
                limit: 1000,
                after: None,
            };
            let list = endpoints::list(db, &operator, &workspace.workspace, &page)?;
            if list.data.is_empty() {
                eprintln!("no webhook endpoints in {}", workspace.workspace);
            } else {
                println!(
                    "{:<30}  {:<9}  {:>9}  {:>8}  URL",
                    "ID", "STATE", "SENT UPTO", "FAILURES"
                );
                for endpoint in &list.data {
                    println!("{}", listed(endpoint));
                }
            }
        }
        EndpointCommand::Enable { workspace, id } => {
            set_enabled(db, &operator, &workspace.workspace, &id, true, reach)?
        }
        EndpointCommand::Disable { workspace, id } => {
            set_enabled(db, &operator, &workspace.workspace, &id, false, reach)?
        }
        EndpointCommand::Delete { workspace, id } => {
            endpoints::delete(db, &operator, &workspace.workspace, &id)?;
            eprintln!("deleted endpoint {id}");
        }
    }
    Ok(())
}

fn set_enabled(
    db: &Database,
    operator: &Caller,
    workspace: &str,
    id: &str,
    enabled: bool,
    reach: Reach,
) -> anyhow::Result<()> {
    let change = EndpointChange {
        url: None,
        description: None,
        event_types: None,
        enabled: Some(enabled),
        batch_size: None,
    };
    let endpoint = endpoints::update(db, operator, workspace, id, change, reach)?;
    eprintln!("{}", listed(&endpoint));
    Ok(())
}

/// One line of `webhook-endpoints list`.
fn listed(endpoint: &Endpoint) -> String {
    let state = if endpoint.enabled {
        "enabled"
    } else {
        "disabled"
    };
    let mut line = format!(
        "{:<30}  {state:<9}  {:>9}  {:>8}  {}",
        endpoint.id, endpoint.delivered_through, endpoint.failed_attempts, endpoint.url
    );
    if let Some(reason) = &endpoint.disabled_reason {
        line.push_str(&format!("  ({reason})"));
    }
    line
}
