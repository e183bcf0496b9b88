//! The audit log is tamper-evident: each tenant's rows form a hash chain
//! that `GET /audit/verify` and `core audit verify` walk. An edited row, a
//! removed row, a removed tail and a row re-hashed to hide an edit are each
//! found where they are; another tenant's chain is not blamed; every row
//! names the address its request came from.

mod common;

use std::net::SocketAddr;

use axum::extract::connect_info::MockConnectInfo;
use axum::http::StatusCode;
use classroom_core::seed;
use common::*;
use serde_json::{Value, json};
use sqlx::PgPool;

const PW: &str = "chain-test-password";

async fn tamper(db: &PgPool, sql: &str) {
    let mut tx = db.begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(sql).execute(&mut *tx).await.unwrap();
    sqlx::query("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn tenant_id(db: &PgPool, slug: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_one(db)
        .await
        .unwrap()
}

/// `core audit verify` against this test's database: (exit code, report).
fn cli_verify(db: &PgPool, tenant: Option<&str>) -> (i32, Value) {
    let o = db.connect_options();
    let url = format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().expect("a database name")
    );
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_core"));
    cmd.args(["--database-url", &url, "audit", "verify"]);
    if let Some(t) = tenant {
        cmd.args(["--tenant", t]);
    }
    let out = cmd.output().expect("core runs");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn breaks(report: &Value) -> Vec<(i64, String)> {
    report["breaks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["chain_seq"].as_i64().unwrap(),
                b["problem"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn edits_and_removals_in_the_audit_log_are_found(db: PgPool) {
    seed::seed(&db, PW, 2).await.unwrap();
    let from: SocketAddr = ([10, 1, 2, 3], 40000).into();
    let app = app(db.clone()).layer(MockConnectInfo(from));
    let (admin, _) = login(&app, "admin@demo.test", PW).await;
    let (teacher, _) = login(&app, "teacher@demo.test", PW).await;
    let (other_admin, _) = login(&app, "admin@other.test", PW).await;

    let demo = tenant_id(&db, "demo").await;
    let (seeded,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log WHERE tenant_id = $1")
        .bind(demo)
        .fetch_one(&db)
        .await
        .unwrap();
    // six changes in the demo tenant, one in the other
    for n in 0..5 {
        let (s, v) = call(
            &app,
            "POST",
            "/users",
            Some(&admin),
            Some(json!({ "email": format!("chain{n}@demo.test"), "display_name": "C", "role": "student", "password": PW })),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = call(
        &app,
        "PATCH",
        "/tenant/settings",
        Some(&admin),
        Some(json!({ "name": "Demo College" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = call(
        &app,
        "POST",
        "/users",
        Some(&other_admin),
        Some(json!({ "email": "chain@other.test", "display_name": "C", "role": "student", "password": PW })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let rows: Vec<(i64, Option<Vec<u8>>, Vec<u8>, Option<String>)> = sqlx::query_as(
        "SELECT chain_seq, prev_hash, hash, host(source_addr) FROM audit_log
          WHERE tenant_id = $1 ORDER BY chain_seq",
    )
    .bind(demo)
    .fetch_all(&db)
    .await
    .unwrap();
    let n = rows.len() as i64;
    assert_eq!(n, seeded + 6, "one row per change");
    // numbered without gaps, each linked to the one before, each naming
    // the address of the request that wrote it (the sign-ins too)
    for (i, (seq, prev, _, source)) in rows.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1);
        let want = (i > 0).then(|| rows[i - 1].2.clone());
        assert_eq!(prev, &want, "row {seq} links to the row before it");
        assert_eq!(source.as_deref(), Some("10.1.2.3"), "row {seq}");
    }

    // whole: the console's walk (admins only) and the CLI's agree
    let (s, _) = call(&app, "GET", "/audit/verify", Some(&teacher), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call(&app, "GET", "/audit/verify", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, r) = call(&app, "GET", "/audit/verify", Some(&admin), None).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["intact"], true, "{r}");
    assert_eq!(r["rows"], n, "{r}");
    let (code, r) = tokio::task::spawn_blocking({
        let db = db.clone();
        move || cli_verify(&db, None)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["intact"], true);
    assert!(r["tenants"].as_u64() >= Some(2), "{r}");

    // an edited row breaks its own hash, and only its tenant's chain
    tamper(
        &db,
        &format!(
            "UPDATE audit_log SET details = '{{\"innocent\": true}}'
              WHERE tenant_id = '{demo}' AND chain_seq = 2"
        ),
    )
    .await;
    let (_, r) = call(&app, "GET", "/audit/verify", Some(&admin), None).await;
    assert_eq!(r["intact"], false, "{r}");
    assert_eq!(breaks(&r), vec![(2, "edited".to_owned())], "{r}");
    let (_, r) = call(&app, "GET", "/audit/verify", Some(&other_admin), None).await;
    assert_eq!(r["intact"], true, "the other tenant's chain is whole: {r}");
    let (code, r) = tokio::task::spawn_blocking({
        let db = db.clone();
        move || cli_verify(&db, Some("demo"))
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "a broken chain fails the command: {r}");
    assert_eq!(breaks(&r), vec![(2, "edited".to_owned())]);

    // re-hashing the edited row to hide it leaves the next row unlinked
    tamper(
        &db,
        &format!(
            "UPDATE audit_log SET hash = audit_row_hash(prev_hash, tenant_id, chain_seq, actor_id,
                    action, target_type, target_id, details, at, source_addr)
              WHERE tenant_id = '{demo}' AND chain_seq = 2"
        ),
    )
    .await;
    let (_, r) = call(&app, "GET", "/audit/verify", Some(&admin), None).await;
    assert_eq!(breaks(&r), vec![(3, "relinked".to_owned())], "{r}");

    // a removed row in the middle, and a removed tail
    tamper(
        &db,
        &format!("DELETE FROM audit_log WHERE tenant_id = '{demo}' AND chain_seq = 4"),
    )
    .await;
    tamper(
        &db,
        &format!("DELETE FROM audit_log WHERE tenant_id = '{demo}' AND chain_seq = {n}"),
    )
    .await;
    let (_, r) = call(&app, "GET", "/audit/verify", Some(&admin), None).await;
    let found = breaks(&r);
    assert!(found.contains(&(3, "relinked".to_owned())), "{r}");
    assert!(found.contains(&(5, "missing".to_owned())), "{r}");
    assert!(found.contains(&(n, "tail_missing".to_owned())), "{r}");

    // the append-only trigger still holds against a plain edit
    let edit = sqlx::query("UPDATE audit_log SET action = 'x' WHERE tenant_id = $1")
        .bind(demo)
        .execute(&db)
        .await;
    assert!(edit.is_err(), "audit rows cannot be updated");
}
