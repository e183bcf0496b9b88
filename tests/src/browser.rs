//! Runs a Playwright script from `tests/browser/` (headless Debian
//! Chromium) and reads the one JSON line it prints at the end.

use std::time::Duration;

use serde_json::Value;

use crate::{Stack, workspace_root};

/// Runs `node <script>` with `env`; returns its result, which must say
/// `"ok": true` (else the test fails with the browsers' and the stack's
/// logs).
pub async fn run(stack: &Stack, script: &str, env: &[(&str, String)]) -> Value {
    // a script given its own TIMEOUT_MS gets that long, and a minute more
    // for the browsers to start and close
    let budget = env
        .iter()
        .find(|(k, _)| *k == "TIMEOUT_MS")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(150), |ms| {
            Duration::from_millis(ms) + Duration::from_secs(60)
        });
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(script)
        .current_dir(workspace_root().join("tests/browser"))
        .env(
            "TIMEOUT_MS",
            std::env::var("BROWSER_TIMEOUT_MS").unwrap_or_else(|_| "90000".into()),
        )
        .env(
            "DEBUG_STATS",
            std::env::var("DEBUG_STATS").unwrap_or_default(),
        )
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(budget, cmd.output())
        .await
        .expect("the browsers finished")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let result: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no result from the browsers\nstdout: {stdout}\nstderr: {stderr}\n{}",
                stack.logs()
            )
        });
    assert_eq!(
        result["ok"],
        true,
        "{result}\nstderr: {stderr}\n{}",
        stack.logs()
    );
    result
}
