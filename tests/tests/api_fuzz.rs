//! A schema-driven fuzz run (schemathesis, pinned in
//! deploy/schemathesis-requirements.txt) against the real stack: core's
//! `/openapi.json` with an admin's access token, then the edge's with a
//! student's join token for a live class. Every generated request must get
//! no 5xx, only a status its operation documents, and a body that matches
//! the documented schema and content type.
//!
//! Seeded, so a failure reproduces; `API_FUZZ_EXAMPLES` raises the number of
//! cases per operation (30 in CI).

use std::time::{Duration, Instant};

use classroom_tests::{Stack, StackOptions, workspace_root};

const CHECKS: &str = "not_a_server_error,status_code_conformance,\
                      response_schema_conformance,content_type_conformance";

/// Fuzzes the document at `schema_url`. Every `{id}` path parameter is the
/// live class's id, so class routes reach the session's writer instead of
/// stopping at "not found"; everything else is generated.
async fn schemathesis(what: &str, schema_url: &str, base: &str, token: &str, session: &str) {
    let bin = workspace_root().join(".tools/venv-schemathesis/bin/schemathesis");
    assert!(
        bin.exists(),
        "{} missing: run deploy/install.sh",
        bin.display()
    );
    let examples = std::env::var("API_FUZZ_EXAMPLES").unwrap_or_else(|_| "30".into());
    let report = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let config = report.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\n\"path.id\" = \"{session}\"\n"),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(schema_url)
        .args(["--url", base])
        .args(["--checks", CHECKS])
        .args(["--max-examples", &examples])
        .args(["--seed", "20250101"])
        .args(["--phases", "examples,coverage,fuzzing"])
        // one worker: Python 3.11's parser is not safe for hypothesis's
        // lambda descriptions from two threads at once
        .args(["--workers", "1"])
        .args(["--request-timeout", "20"])
        .args(["--generation-database", "none"])
        .arg("--no-color")
        .args(["--suppress-health-check", "all"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .env(
            "SCHEMATHESIS_HOOKS",
            workspace_root().join("tests/schemathesis_hooks.py"),
        )
        .current_dir(report.path())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(900), cmd.output())
        .await
        .expect("schemathesis finished within 15 minutes")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // the summary: operations and cases, for the log
    for line in stdout
        .lines()
        .filter(|l| l.contains("operations") || l.contains("test cases") || l.contains("passed"))
    {
        println!("{what}: {}", line.trim());
    }
    println!(
        "{what}: fuzz run took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "{what}: schemathesis found problems ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_documented_answers_from_core_and_edge() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let admin = api.login("admin@demo.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student = api.login("student1@demo.test").await.unwrap();
    // a live class, so the edge has a session and the student a join token
    let session = api.start_class(&teacher).await.unwrap();
    let joined = api.join(&student, &session.id).await.unwrap();

    // the edge first: core's run may end the class
    let edge = &stack.edges[0].url;
    schemathesis(
        "edge",
        &format!("{edge}/openapi.json"),
        edge,
        &joined.join_token,
        &session.id,
    )
    .await;
    schemathesis(
        "core",
        &format!("{}/openapi.json", stack.core_url),
        &stack.core_url,
        &admin,
        &session.id,
    )
    .await;

    // both stayed up through it
    for base in [&stack.core_url, edge] {
        let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert!(r.status().is_success(), "{base}: {}", r.status());
    }
}
