//! `rollcall replay`: posts sample events to a running server, each signed with a fresh timestamp.

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
    /// The signing secret. Default: the first of WORKOS_WEBHOOK_SECRETS.
    #[arg(long)]
    pub secret: Option<String>,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let secret = match args.secret {
        Some(secret) => secret,
        None => std::env::var("WORKOS_WEBHOOK_SECRETS")
            .ok()
            .and_then(|v| {
                v.split(',')
                    .map(str::trim)
                    .find(|s| !s.is_empty())
                    .map(str::to_string)
            })
            .context("no secret to sign with: pass --secret or set WORKOS_WEBHOOK_SECRETS")?,
    };
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
        let header = signature::sign(&secret, signature::now_ms(), &body);
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
