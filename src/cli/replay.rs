//! `rollcall replay`: posts sample events to a running server, each signed with a fresh timestamp.

use crate::secret::{parse_secret, ExposeSecret, SecretString};
use crate::workos::signature;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Event files, or folders whose `*.json` files are sent in name order.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The webhook endpoint. Default: http://ROLLCALL_BIND/webhooks/workos.
    #[arg(long)]
    pub url: Option<String>,
    /// The signing secret; of a comma-separated list, the first. Default: WORKOS_WEBHOOK_SECRETS, which
    /// keeps the secret out of the process list and the shell's history.
    #[arg(long, env = "WORKOS_WEBHOOK_SECRETS", hide_env_values = true, value_parser = parse_secret)]
    pub secret: Option<SecretString>,
}

/// The first secret of a comma-separated list.
fn first_secret(secrets: &SecretString) -> Option<&str> {
    secrets
        .expose_secret()
        .split(',')
        .map(str::trim)
        .find(|s| !s.is_empty())
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let secret = args
        .secret
        .as_ref()
        .and_then(first_secret)
        .context("no secret to sign with: set WORKOS_WEBHOOK_SECRETS or pass --secret")?;
    let url = args.url.unwrap_or_else(|| {
        let bind = std::env::var("ROLLCALL_BIND").unwrap_or_else(|_| "127.0.0.1:8080".into());
        format!("http://{bind}/webhooks/workos")
    });
    let files = super::event_files(&args.paths)?;
    let client = reqwest::Client::new();
    let mut refused = 0;
    for file in &files {
        let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let event: serde_json::Value = serde_json::from_slice(&body)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        let kind = event
            .get("event")
            .and_then(|e| e.as_str())
            .unwrap_or("?")
            .to_string();
        let header = signature::sign(secret, signature::now_ms(), &body);
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .header("WorkOS-Signature", header)
            .body(body)
            .send()
            .await
            .with_context(|| format!("posting {} to {url}", file.display()))?;
        let status = response.status();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if status.is_success() {
            println!("{} {kind:<26} {name}", status.as_u16());
        } else {
            refused += 1;
            let text = response.text().await.unwrap_or_default();
            println!("{} {kind:<26} {name}  {text}", status.as_u16());
        }
    }
    println!(
        "{} sent, {} accepted, {refused} refused",
        files.len(),
        files.len() - refused
    );
    anyhow::ensure!(refused == 0, "{refused} event(s) were refused");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[derive(clap::Parser)]
    struct Replay {
        #[command(flatten)]
        args: ReplayArgs,
    }

    #[test]
    fn the_secret_comes_from_the_environment_unshown() {
        let command = Replay::command();
        let secret = command
            .get_arguments()
            .find(|a| a.get_id() == "secret")
            .expect("a --secret argument");
        assert_eq!(
            secret.get_env(),
            Some(std::ffi::OsStr::new("WORKOS_WEBHOOK_SECRETS"))
        );
        assert!(secret.is_hide_env_values_set());
    }

    #[test]
    fn signs_with_the_first_secret_and_never_prints_it() {
        let args = ReplayArgs {
            paths: vec![],
            url: None,
            secret: Some(" , whsec_new ,whsec_old".into()),
        };
        assert_eq!(
            args.secret.as_ref().and_then(first_secret),
            Some("whsec_new")
        );
        assert!(!format!("{args:?}").contains("whsec"));
    }
}
