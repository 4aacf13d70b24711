//! `rollcall resync` and `rollcall demo`, as the real binary runs them.

use crate::helpers::{spawn_app_with, Backend, TestApp, OPERATOR_TOKEN};
use reqwest::{Method, StatusCode};
use rollcall::dev_broker::{
    DevBroker, DevBrokerConfig, DevBrokerHandle, DirectorySource, GenerateOptions,
};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `rollcall` binary, with an empty environment but for `PATH`.
pub fn rollcall() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// Runs the binary off the async workers, so the service under test keeps answering it.
async fn run(command: Command) -> Output {
    let mut command = command;
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn broker(users: u32) -> DevBrokerHandle {
    DevBroker::start(DevBrokerConfig {
        source: DirectorySource::Generate(GenerateOptions {
            users,
            groups: 3,
            memberships_per_user: 1.5,
            inactive_share: 0.0,
        }),
        ..DevBrokerConfig::default()
    })
    .await
    .expect("the dev broker starts")
}

async fn app_for(backend: Backend, broker: &DevBrokerHandle) -> TestApp {
    let (key, base) = (broker.api_key.clone(), broker.base_url.clone());
    let app = spawn_app_with(backend, move |s| {
        s.workos_api_key = Some(key.into());
        s.workos_api_base = base;
        s.resync_interval = Some(Duration::ZERO);
    })
    .await;
    app.synced_workspace("org_dev").await;
    app
}

/// The one workspace the service has.
async fn app_workspace(app: &TestApp) -> String {
    let (_, listed) = app.op(Method::GET, "/api/v1/workspaces", None).await;
    listed["data"][0]["id"].as_str().unwrap().to_string()
}

fn resync(app: &TestApp, directory: &str) -> Command {
    let mut command = rollcall();
    command
        .args(["resync", "--directory", directory, "--url", &app.address])
        .env("ROLLCALL_OPERATOR_TOKEN", OPERATOR_TOKEN);
    command
}

crate::on_both_backends!(
    backend:
    resync_follows_the_run_and_prints_its_counts,
    a_held_resync_fails_until_forced,
    resync_explains_what_the_server_refused,
);

async fn resync_follows_the_run_and_prints_its_counts(backend: Backend) {
    let broker = broker(40).await;
    let app = app_for(backend, &broker).await;
    let output = run(resync(&app, &broker.directory_id)).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    assert!(stdout.contains("users_created: 40"), "{stdout}");
    assert!(stdout.contains("memberships_added:"), "{stdout}");
    let (status, listed) = app
        .op(Method::GET, "/api/v1/sync-runs?status=succeeded", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["trigger"], "on_demand");
}

async fn a_held_resync_fails_until_forced(backend: Backend) {
    let broker = broker(40).await;
    let app = app_for(backend, &broker).await;
    assert!(run(resync(&app, &broker.directory_id))
        .await
        .status
        .success());
    // Half the directory goes at the broker, unannounced: more than the pull may deprovision unheld.
    for user in broker.truth().users.iter().take(20) {
        broker.delete_user(&user.id).expect("the user is deleted");
    }
    let held = run(resync(&app, &broker.directory_id)).await;
    let (stdout, stderr) = (text(&held.stdout), text(&held.stderr));
    assert!(!held.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("held"), "{stdout}");
    assert!(stderr.contains("--force"), "{stderr}");
    // Previewed first: that the guard would hold it, and what forcing it would do; nothing changes.
    let members = app.members(&app_workspace(&app).await).await;
    let mut held_preview = resync(&app, &broker.directory_id);
    held_preview.arg("--dry-run");
    let stdout = text(&run(held_preview).await.stdout);
    assert!(stdout.contains("the guard would hold it"), "{stdout}");
    assert!(!stdout.contains("member.deprovisioned"), "{stdout}");
    let mut previewed = resync(&app, &broker.directory_id);
    previewed.args(["--dry-run", "--force"]);
    let previewed = run(previewed).await;
    let stdout = text(&previewed.stdout);
    assert!(
        previewed.status.success(),
        "{stdout}\n{}",
        text(&previewed.stderr)
    );
    assert!(stdout.contains("nothing was changed"), "{stdout}");
    assert!(stdout.contains("member.deprovisioned: 20"), "{stdout}");
    assert!(stdout.contains("… and 10 more"), "{stdout}");
    assert_eq!(app.members(&app_workspace(&app).await).await, members);
    let mut forced = resync(&app, &broker.directory_id);
    forced.arg("--force");
    let forced = run(forced).await;
    let stdout = text(&forced.stdout);
    assert!(
        forced.status.success(),
        "{stdout}\n{}",
        text(&forced.stderr)
    );
    assert!(stdout.contains("(forced)"), "{stdout}");
    assert!(stdout.contains("deprovisioned: 20"), "{stdout}");
}

async fn resync_explains_what_the_server_refused(backend: Backend) {
    let broker = broker(5).await;
    let app = app_for(backend, &broker).await;
    let unknown = run(resync(&app, "directory_unknown")).await;
    assert!(!unknown.status.success());
    let stderr = text(&unknown.stderr);
    assert!(
        stderr.contains("no directory directory_unknown"),
        "{stderr}"
    );

    let mut wrong_token = resync(&app, &broker.directory_id);
    wrong_token.args(["--token", "not-a-token"]);
    let refused = run(wrong_token).await;
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("401"),
        "{}",
        text(&refused.stderr)
    );

    let mut no_token = rollcall();
    no_token.args(["resync", "--directory", "d", "--url", &app.address]);
    let missing = run(no_token).await;
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("ROLLCALL_OPERATOR_TOKEN"));

    // A server without a broker API key cannot pull.
    let keyless = spawn_app_with(backend, |_| {}).await;
    let conflict = run(resync(&keyless, &broker.directory_id)).await;
    assert!(!conflict.status.success());
    assert!(
        text(&conflict.stderr).contains("WORKOS_API_KEY"),
        "{}",
        text(&conflict.stderr)
    );
}

#[test]
fn resync_reports_an_unreachable_server() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = rollcall()
        .args(["resync", "--directory", "directory_x", "--token", "t"])
        .env("ROLLCALL_BIND", format!("0.0.0.0:{port}"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("cannot reach Rollcall"), "{stderr}");
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn the_new_commands_explain_themselves() {
    for command in [vec!["resync", "--help"], vec!["demo", "--help"]] {
        let output = rollcall().args(&command).output().unwrap();
        assert!(output.status.success(), "{command:?}");
        let help = text(&output.stdout);
        assert!(help.contains("Usage"), "{command:?}");
    }
    let help = text(&rollcall().args(["demo", "--help"]).output().unwrap().stdout);
    for flag in ["--bind", "--broker-bind", "--database", "--users"] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}

/// The value after `label` on the first line that starts with it.
fn field(lines: &[String], label: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {lines:#?}"))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_a_synced_workspace_and_stops_cleanly() {
    let folder = tempfile::tempdir().unwrap();
    let mut child = rollcall()
        .args([
            "demo",
            "--bind",
            "127.0.0.1:0",
            "--broker-bind",
            "127.0.0.1:0",
            "--users",
            "60",
        ])
        .current_dir(folder.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain stderr (the log) on a thread, so the demo never blocks on a full pipe.
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut log);
        log
    });
    // Read stdout on a thread until the demo says it is ready (or stdout ends).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let ready = line.starts_with("Press Ctrl-C");
                lines.push(line);
                if ready {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                let log = log.join().unwrap_or_default();
                panic!("the demo did not get ready: {lines:#?}\n{log}");
            }
        }
    }
    let token = field(&lines, "operator token:");
    let service = field(&lines, "service:");
    let workspace = field(&lines, "workspace:");
    assert!(token.starts_with("rc_"), "{lines:#?}");
    assert!(lines
        .iter()
        .any(|l| l.contains("run_") && l.contains("succeeded")));
    assert!(
        lines.iter().any(|l| l.starts_with("deprovisioning:")
            && l.contains("member.deprovisioned, signature verified")),
        "{lines:#?}"
    );
    let members_url = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("curl"))
        .filter_map(|l| l.split_whitespace().last())
        .find(|url| url.ends_with("/members"))
        .unwrap_or_else(|| panic!("no members URL in {lines:#?}"))
        .to_string();
    assert_eq!(
        members_url,
        format!("{service}/api/v1/workspaces/{workspace}/members")
    );
    let client = reqwest::Client::new();
    let get_json = |url: String| {
        let request = client.get(url).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let members = get_json(format!("{members_url}?limit=1000")).await;
    let members = members["data"].as_array().expect("a list of members");
    assert!(members.len() >= 50, "{}", members.len());
    assert!(members.iter().all(|m| m["managed_by"] == "directory"));
    // A role assigned at the identity provider reached the member the demo names.
    let roles_line = lines
        .iter()
        .find(|l| l.starts_with("roles:"))
        .unwrap_or_else(|| panic!("no roles line in {lines:#?}"));
    let promoted = members
        .iter()
        .find(|m| roles_line.contains(&format!(" {} was admin", m["email"].as_str().unwrap())))
        .unwrap_or_else(|| panic!("no member named in {roles_line:?}"));
    assert_eq!(promoted["role"], "admin", "{promoted}");
    assert_eq!(
        promoted["role_source"],
        serde_json::json!({ "type": "directory_role", "slug": "demo-admin" })
    );
    // Users pushed over SCIM are members, and the printed SCIM lines reach the directory.
    for email in ["grace@scim.example", "dorothy@scim.example"] {
        assert!(
            members.iter().any(|m| m["email"] == email),
            "{email} pushed over SCIM is no member"
        );
    }
    let scim_line = lines
        .iter()
        .find(|l| {
            l.trim_start().starts_with("curl") && l.contains("/scim/v2/") && l.contains("filter=")
        })
        .unwrap_or_else(|| panic!("no SCIM line in {lines:#?}"));
    let scim_url = scim_line
        .split('\'')
        .nth(1)
        .unwrap_or_else(|| panic!("no URL in {scim_line:?}"))
        .replace("sw%20%22mary%22", "sw%20%22grace%22");
    let scim_token = scim_line
        .split("Bearer ")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("no token in {scim_line:?}"));
    let answer = client.get(scim_url).bearer_auth(scim_token).send().await;
    let found: serde_json::Value = answer.unwrap().json().await.unwrap();
    assert_eq!(found["totalResults"], 1, "{found}");
    let metrics = client
        .get(format!("{service}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("rollcall_sync_runs_total{status=\"succeeded\"} 1"));
    let screens = client
        .get(field(&lines, "admin screens:"))
        .send()
        .await
        .unwrap();
    assert_eq!(screens.status(), reqwest::StatusCode::OK);
    assert!(screens.text().await.unwrap().contains("app.js"));
    // The demo's lost webhooks were read by the Events API tail: its cursor is the one the demo names.
    let tail_line = lines
        .iter()
        .find(|l| l.starts_with("events tail:"))
        .unwrap_or_else(|| panic!("no events tail line in {lines:#?}"));
    let cursor = tail_line
        .split("(cursor ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no cursor in {tail_line:?}"));
    let tail = get_json(format!("{service}/api/v1/event-tail")).await;
    assert_eq!(tail["cursor"], cursor, "{tail}");
    assert!(tail["events_applied"].as_i64().unwrap_or(0) >= 1, "{tail}");
    assert!(folder.path().join("rollcall-demo.db").exists());

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the demo did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = log.join().unwrap_or_default();
    assert!(exit.success(), "{exit:?}\n{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
}
