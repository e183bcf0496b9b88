//! The Postgres pool and migrations.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::Config;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let opts = PgConnectOptions::from_str(&config.database_url)
        .context("DATABASE_URL is not a valid Postgres URL")?
        .log_statements(tracing::log::LevelFilter::Trace);
    if config.create_database {
        create_if_missing(&opts).await?;
    }
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(opts)
        .await
        .with_context(|| "connecting to Postgres")
}

async fn create_if_missing(opts: &PgConnectOptions) -> anyhow::Result<()> {
    let Some(name) = opts.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let admin = opts.clone().database("postgres");
    let mut conn = admin
        .connect()
        .await
        .context("connecting to the postgres database")?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await?;
    if exists.is_none() {
        let quoted = name.replace('"', "\"\"");
        match sqlx::query(&format!("CREATE DATABASE \"{quoted}\""))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // another process created it first
            Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).context("creating database"),
        }
    }
    Ok(())
}

pub async fn migrate(db: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(db).await.context("running migrations")
}

/// The id of the tenant with this slug.
pub async fn tenant_by_slug(db: &PgPool, slug: &str) -> anyhow::Result<protocol::TenantId> {
    let id: Option<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(db)
        .await?;
    id.map(protocol::TenantId::from_uuid)
        .ok_or_else(|| anyhow::anyhow!("no tenant has the slug {slug}"))
}
