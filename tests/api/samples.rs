//! Every provider's sample sequence, replayed with `rollcall replay` against a running server.

use crate::helpers::{TestApp, SECRET};
use rollcall::cli::replay::{self, ReplayArgs};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-samples")
}

fn providers() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(samples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

/// The organization of a provider's sequence, from its `dsync.activated`.
fn organization_of(folder: &Path) -> String {
    let files = rollcall::cli::event_files(&[folder.to_path_buf()]).unwrap();
    let first: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(first["event"], "dsync.activated", "{}", folder.display());
    first["data"]["organization_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn every_provider_sequence_ends_in_the_expected_members(app: TestApp) {
    let providers = providers();
    assert_eq!(
        providers.len(),
        9,
        "one folder for each of the nine providers"
    );
    for folder in providers {
        let name = folder.file_name().unwrap().to_string_lossy().to_string();
        let ws = app.synced_workspace(&organization_of(&folder)).await;
        replay::run(ReplayArgs {
            paths: vec![folder.clone()],
            url: Some(format!("{}/webhooks/workos", app.address)),
            secret: Some(SECRET.into()),
        })
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        app.wait_applied().await;
        let expected: Vec<Value> =
            serde_json::from_slice(&std::fs::read(folder.join("expected/members.json")).unwrap())
                .unwrap();
        let mut actual: Vec<Value> = app
            .members(&ws)
            .await
            .iter()
            .map(|m| {
                serde_json::json!({
                    "email": m["email"], "first_name": m["first_name"],
                    "last_name": m["last_name"], "status": m["status"],
                })
            })
            .collect();
        actual.sort_by_key(|m| m["email"].as_str().unwrap().to_string());
        assert_eq!(actual, expected, "{name}");
        let (_, events) = app
            .op(reqwest::Method::GET, "/api/v1/events?status=failed", None)
            .await;
        assert!(
            events["data"].as_array().unwrap().is_empty(),
            "{name}: {events}"
        );
    }
}

crate::on_both_backends!(every_provider_sequence_ends_in_the_expected_members);
