//! The broker (WorkOS Directory Sync) as Rollcall sees it: webhook signatures, event payloads and timestamps.

pub mod events;
pub mod signature;
pub mod text;
pub mod timestamp;

/// `PROPTEST_CASES`, or `default`, cases for a property test, with no file of past failures.
#[cfg(test)]
pub(crate) fn proptest_config(default: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
