//! Core does not start without what it must not lose: an object store it
//! cannot open is an error, not a silent in-memory stand-in that would drop
//! recordings, decks and exports at the next restart.

use clap::Parser;
use classroom_core::AppState;
use classroom_core::config::Config;
use classroom_core::identity::signing_keys::SigningKeys;

async fn app_with_objects_at(
    dir: &std::path::Path,
    objects: &std::path::Path,
) -> anyhow::Result<AppState> {
    let config = Config::parse_from([
        "core",
        "--kek-file",
        dir.join("kek.key").to_str().unwrap(),
        "--object-store-dir",
        objects.to_str().unwrap(),
    ]);
    let db = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    let keys = SigningKeys::from_key(&ed25519_dalek::SigningKey::from_bytes(&[3u8; 32])).unwrap();
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect("nats://127.0.0.1:1")
        .await
        .unwrap();
    AppState::new(db, keys, nats, config)
}

#[tokio::test]
async fn an_object_store_that_cannot_be_opened_stops_core() {
    let dir = tempfile::tempdir().unwrap();
    // a file where the store's directory should be
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let err = app_with_objects_at(dir.path(), &blocker.join("objects"))
        .await
        .err()
        .expect("core started without its object store");
    assert!(format!("{err:#}").contains("object store"), "{err:#}");

    let good = dir.path().join("objects");
    assert!(app_with_objects_at(dir.path(), &good).await.is_ok());
    assert!(good.is_dir());
}

/// `DATABASE_URL` with `sslmode=require`: core's pool speaks TLS to
/// PostgreSQL (the server says so for core's own connection).
#[tokio::test]
async fn core_reaches_postgres_over_tls() {
    let base = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let config = Config::parse_from([
        "core",
        "--database-url",
        &format!("{base}/postgres?sslmode=require"),
    ]);
    let db = classroom_core::db::connect(&config)
        .await
        .expect("a TLS connection (the PostgreSQL server must have ssl = on)");
    let (ssl, version): (bool, Option<String>) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(ssl, "the connection is not encrypted");
    assert!(
        version.as_deref().is_some_and(|v| v.starts_with("TLSv1.")),
        "{version:?}"
    );
}
