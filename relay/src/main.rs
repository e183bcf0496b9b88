//! The relay process. The media relay itself (MoQ over QUIC on `--listen`)
//! is not built yet; today the process only answers `/healthz` on the same
//! port number over TCP, so the dev stack has every part in place.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde_json::json;

#[derive(Debug, Clone, Parser)]
#[command(name = "relay", about = "Classroom MoQ relay")]
struct Config {
    /// QUIC (UDP) address for MoQ sessions; its TCP twin serves /healthz.
    #[arg(long, env = "RELAY_LISTEN", default_value = "127.0.0.1:4443")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::parse();
    let app = Router::new().route(
        "/healthz",
        get(|| async {
            Json(json!({ "status": "ok", "service": "relay", "media": "not yet implemented" }))
        }),
    );
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(addr = %config.listen, "relay health endpoint listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
