//! The official WorkOS Python SDK reading the dev broker.

use crate::helpers::*;

/// The official WorkOS Python SDK, pointed at the dev broker, lists everything with auto-paging.
///
/// Runs the Python in `ROLLCALL_SDK_PYTHON` (default `python3`), which must have the SDK installed:
/// `python3 -m venv target/sdk-venv && target/sdk-venv/bin/pip install -r tests/sdk/requirements.txt`,
/// then `ROLLCALL_SDK_PYTHON=target/sdk-venv/bin/python`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_lists_every_user_and_group() {
    let python = std::env::var("ROLLCALL_SDK_PYTHON").unwrap_or_else(|_| "python3".into());
    let install = "python3 -m venv target/sdk-venv && target/sdk-venv/bin/pip install -r tests/sdk/requirements.txt, \
                   then run with ROLLCALL_SDK_PYTHON=target/sdk-venv/bin/python (or pip install -r tests/sdk/requirements.txt \
                   into the Python ROLLCALL_SDK_PYTHON names)";
    let probe = tokio::process::Command::new(&python)
        .args(["-c", "import workos"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python:?} (ROLLCALL_SDK_PYTHON): {e}; {install}"));
    assert!(
        probe.status.success(),
        "the workos SDK is not importable by {python:?}: {}\ninstall it: {install}",
        String::from_utf8_lossy(&probe.stderr).trim()
    );

    let broker = start(generated(250, 30)).await;
    let counts = broker.counts();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/list_with_sdk.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&broker.base_url)
        .arg(&broker.api_key)
        .arg(&broker.directory_id)
        .arg(counts.users.to_string())
        .arg(counts.groups.to_string())
        .arg(counts.memberships.to_string())
        .output()
        .await
        .expect("the SDK script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("listed 250 users and 30 groups"),
        "{stdout}"
    );
}
