//! The command line never shows a secret: `--help` hides what the
//! environment holds for the database URL and the demo password.

use std::process::Command;

fn help(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_core"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("core runs");
    assert!(out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_hides_secret_values() {
    let text = help(
        &["--help"],
        &[(
            "DATABASE_URL",
            "postgres://app:s3cret-pw@db.campus.test/classroom",
        )],
    );
    assert!(text.contains("--database-url"), "{text}");
    assert!(
        text.contains("DATABASE_URL"),
        "the variable is named: {text}"
    );
    assert!(!text.contains("s3cret-pw"), "{text}");

    let text = help(
        &["seed-demo", "--help"],
        &[("DEMO_PASSWORD", "hunter2-demo")],
    );
    assert!(text.contains("--password"), "{text}");
    assert!(!text.contains("hunter2-demo"), "{text}");
    assert!(
        !text.contains("classroom-demo"),
        "no default password either: {text}"
    );
}
