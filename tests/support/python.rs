//! The Python with the official client libraries the tests check Rollcall against (tests/sdk/requirements.txt).

/// The Python in `ROLLCALL_SDK_PYTHON` (default `python3`), checked to import `module`. Install the
/// libraries: `python3 -m venv target/sdk-venv && target/sdk-venv/bin/pip install -r
/// tests/sdk/requirements.txt`, then `ROLLCALL_SDK_PYTHON=target/sdk-venv/bin/python` (`scripts/test` does
/// both).
pub async fn sdk_python(module: &str) -> String {
    let python = std::env::var("ROLLCALL_SDK_PYTHON").unwrap_or_else(|_| "python3".into());
    let install = "python3 -m venv target/sdk-venv && target/sdk-venv/bin/pip install -r tests/sdk/requirements.txt, \
                   then run with ROLLCALL_SDK_PYTHON=target/sdk-venv/bin/python (or pip install -r tests/sdk/requirements.txt \
                   into the Python ROLLCALL_SDK_PYTHON names)";
    let probe = tokio::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python:?} (ROLLCALL_SDK_PYTHON): {e}; {install}"));
    assert!(
        probe.status.success(),
        "{module} is not importable by {python:?}: {}\ninstall it: {install}",
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    python
}
