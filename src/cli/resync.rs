//! `rollcall resync`: asks a running service for a full pull of one directory, follows the run with a
//! progress bar and prints its counts; or, with `--dry-run`, prints what a pull would do.

use crate::domain::RunStatus;
use crate::secret::{parse_secret, ExposeSecret, SecretString};
use anyhow::Context;
use clap::Args;
use indicatif::ProgressBar;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct ResyncArgs {
    /// The directory (`directory_…`) to pull in full.
    #[arg(long, value_name = "ID")]
    pub directory: String,
    /// Apply everything, including the deprovisioning a `held` run kept back (past the mass-deprovision
    /// guard, ROLLCALL_MASS_DEPROVISION_THRESHOLD).
    #[arg(long)]
    pub force: bool,
    /// Apply nothing: list the directory now and print what a pull would do with it (its counts, whether
    /// the guard would hold it, and the first changes of each kind). With --force, what a forced pull
    /// would do.
    #[arg(long)]
    pub dry_run: bool,
    /// The running service. Default: http://ROLLCALL_BIND, else http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// An operator token. Default: ROLLCALL_OPERATOR_TOKEN.
    #[arg(long, value_parser = parse_secret)]
    pub token: Option<SecretString>,
}

/// A sync run as `GET /api/v1/sync-runs/{run}` answers it; read leniently, so fields added later (or
/// missing) never break the command.
#[derive(Debug, Deserialize)]
struct Run {
    #[serde(default)]
    status: String,
    #[serde(default)]
    progress: Option<Progress>,
    #[serde(default)]
    counts: Option<Value>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Progress {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    requests: Option<u64>,
    #[serde(default)]
    users_listed: Option<u64>,
}

/// The service's URL when none is given: where `ROLLCALL_BIND` says it listens, reached on loopback
/// when it listens on every interface.
pub fn default_url() -> String {
    let bind = std::env::var("ROLLCALL_BIND")
        .ok()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let bind = match bind.rsplit_once(':') {
        Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => bind,
    };
    format!("http://{bind}")
}

pub async fn run(args: ResyncArgs) -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let token = args
        .token
        .map(|t| t.expose_secret().to_string())
        .or_else(|| std::env::var("ROLLCALL_OPERATOR_TOKEN").ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .context("no operator token: pass --token or set ROLLCALL_OPERATOR_TOKEN")?;
    let base = args
        .url
        .unwrap_or_else(default_url)
        .trim_end_matches('/')
        .to_string();
    let directory = args.directory.trim().to_string();
    anyhow::ensure!(!directory.is_empty(), "--directory is empty");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;

    let url = format!("{base}/api/v1/directories/{directory}/resync");
    if args.dry_run {
        return preview(&client, &url, &token, &base, &directory, args.force).await;
    }
    let response = client
        .post(&url)
        .query(&[("force", args.force)])
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| unreachable(&base, e))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != StatusCode::ACCEPTED {
        anyhow::bail!(refusal(status, &body, &directory));
    }
    let run_id = body["run_id"]
        .as_str()
        .context("the service accepted the resync but named no run")?
        .to_string();
    println!(
        "run {run_id} of {directory} started{}",
        if args.force { " (forced)" } else { "" }
    );

    let started = Instant::now();
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut failures = 0;
    let run = loop {
        let answer = client
            .get(format!("{base}/api/v1/sync-runs/{run_id}"))
            .bearer_auth(&token)
            .send()
            .await;
        let run = match answer {
            Ok(response) if response.status().is_success() => {
                failures = 0;
                response
                    .json::<Run>()
                    .await
                    .context("the service's answer about the run is not a sync run")?
            }
            Ok(response) => {
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                bar.finish_and_clear();
                anyhow::bail!(
                    "following run {run_id}: {}",
                    refusal(status, &body, &directory)
                );
            }
            Err(error) => {
                failures += 1;
                if failures >= 20 {
                    bar.finish_and_clear();
                    return Err(unreachable(&base, error))
                        .with_context(|| format!("run {run_id} may still be going"));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if run.status.parse().is_ok_and(RunStatus::has_ended) {
            bar.finish_and_clear();
            break run;
        }
        let progress = run.progress.as_ref();
        let phase = progress
            .and_then(|p| p.phase.clone())
            .unwrap_or_else(|| run.status.clone());
        let requests = progress.and_then(|p| p.requests).unwrap_or(0);
        let users = progress.and_then(|p| p.users_listed).unwrap_or(0);
        bar.set_message(format!(
            "{phase} · {users} users listed and applied · {requests} requests"
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let elapsed = started.elapsed().as_secs_f64();
    println!("run {run_id} {} after {elapsed:.1}s", run.status);
    if let Some(Value::Object(counts)) = &run.counts {
        for (name, value) in counts {
            println!("  {name}: {value}");
        }
    }
    match run.status.parse() {
        Ok(RunStatus::Succeeded) => Ok(()),
        Ok(RunStatus::Held) => anyhow::bail!(
            "run {run_id} held back its destructive steps: it would deprovision more of the directory's \
             active members than the threshold allows, so no user, group or membership was removed \
             (additions and updates were applied). Check the broker, then \
             `rollcall resync --directory {directory} --force` releases it"
        ),
        _ => anyhow::bail!(
            "run {run_id} failed; nothing was deleted: {}",
            run.error.as_deref().unwrap_or("no reason given")
        ),
    }
}

/// Asks for a preview of a resync and prints it; nothing is applied. A listing takes as long as the
/// broker makes it, so the request may wait up to an hour.
async fn preview(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    base: &str,
    directory: &str,
    force: bool,
) -> anyhow::Result<()> {
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(format!("listing {directory} to preview a resync"));
    let response = client
        .post(url)
        .query(&[("dry_run", true), ("force", force)])
        .bearer_auth(token)
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .map_err(|e| unreachable(base, e));
    bar.finish_and_clear();
    let response = response?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != StatusCode::OK {
        anyhow::bail!(refusal(status, &body, directory));
    }
    println!(
        "preview of a{} resync of {directory}: nothing was changed",
        if force { " forced" } else { "" }
    );
    if body["held"] == true {
        println!(
            "  the guard would hold it: more of the directory's active members would be deprovisioned              than the threshold allows (--force previews applying it anyway)"
        );
    }
    if let Value::Object(counts) = &body["counts"] {
        for (name, value) in counts {
            println!("  {name}: {value}");
        }
    }
    let kinds = body["changes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(kind, sample)| (kind.clone(), sample))
        .chain(
            ["memberships_added", "memberships_removed", "groups_deleted"]
                .into_iter()
                .map(|kind| (kind.to_string(), &body[kind])),
        );
    for (kind, sample) in kinds {
        let count = sample["count"].as_i64().unwrap_or(0);
        if count == 0 {
            continue;
        }
        println!("  {kind}: {count}");
        for change in sample["first"].as_array().into_iter().flatten() {
            println!("    {}", subject(change));
        }
        let named = sample["first"].as_array().map_or(0, Vec::len) as i64;
        if count > named {
            println!("    … and {} more", count - named);
        }
    }
    Ok(())
}

/// Who or what a previewed change is about, in a few words.
fn subject(change: &Value) -> String {
    let data = &change["data"];
    let named = [
        &data["member"]["email"],
        &data["team"]["name"],
        &change["name"],
    ]
    .into_iter()
    .find_map(Value::as_str);
    match (
        named,
        change["group_id"].as_str(),
        change["user_id"].as_str(),
    ) {
        (Some(name), _, _) => name.to_string(),
        (None, Some(group), Some(user)) => format!("{user} in {group}"),
        _ => change["subject_id"]
            .as_str()
            .or_else(|| change["id"].as_str())
            .unwrap_or("")
            .to_string(),
    }
}

fn unreachable(base: &str, error: reqwest::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot reach Rollcall at {base} ({error}); is `rollcall serve` running there? \
         Pass --url or set ROLLCALL_BIND"
    )
}

/// What an error answer means for the operator.
fn refusal(status: StatusCode, body: &Value, directory: &str) -> String {
    let code = body["code"].as_str().unwrap_or("");
    let detail = body["detail"]
        .as_str()
        .or_else(|| body["title"].as_str())
        .unwrap_or("");
    match (status, code) {
        (StatusCode::UNAUTHORIZED, _) => {
            "the token was refused (401): pass an operator token with --token or ROLLCALL_OPERATOR_TOKEN".into()
        }
        (StatusCode::FORBIDDEN, _) => {
            "this token is a workspace admin's (403): resync needs an operator token".into()
        }
        (StatusCode::NOT_FOUND, _) => format!(
            "no directory {directory} (404): neither Rollcall nor the broker knows it"
        ),
        (StatusCode::CONFLICT, "sync_in_progress") => format!(
            "a run of {directory} is already in progress (409); follow it with GET /api/v1/sync-runs?directory={directory}"
        ),
        (StatusCode::CONFLICT, "broker_not_configured") => {
            "the service cannot pull the broker (409): WORKOS_API_KEY is not set where it runs".into()
        }
        _ if detail.is_empty() => format!("the service answered {status}"),
        _ => format!("the service answered {status}: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_run_is_read_leniently() {
        let run: Run = serde_json::from_value(json!({
            "status": "running",
            "progress": {"phase": "listing", "requests": 3, "users_listed": null}
        }))
        .unwrap();
        let progress = run.progress.unwrap();
        assert_eq!(progress.phase.as_deref(), Some("listing"));
        assert_eq!(progress.users_listed, None);
        let run: Run =
            serde_json::from_value(json!({"status": "queued", "progress": null})).unwrap();
        assert!(run.progress.is_none());
        let run: Run = serde_json::from_value(json!({
            "status": "running",
            "progress": {"phase": "listing", "requests": 9, "users_listed": 300, "something_new": true}
        }))
        .unwrap();
        assert_eq!(run.progress.unwrap().users_listed, Some(300));
    }

    #[test]
    fn refusals_say_what_to_do() {
        let conflict = json!({"status": 409, "code": "broker_not_configured", "title": "Conflict"});
        assert!(refusal(StatusCode::CONFLICT, &conflict, "d").contains("WORKOS_API_KEY"));
        let running = json!({"status": 409, "code": "sync_in_progress"});
        assert!(refusal(StatusCode::CONFLICT, &running, "d").contains("in progress"));
        assert!(refusal(StatusCode::NOT_FOUND, &Value::Null, "directory_x").contains("directory_x"));
        assert!(refusal(StatusCode::UNAUTHORIZED, &Value::Null, "d").contains("--token"));
    }
}
