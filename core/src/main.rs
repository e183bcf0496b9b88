use clap::Parser;
use classroom_core::config::{AnalyticsCommand, AuditCommand, Config, CoreCommand};
use tokio_util::sync::CancellationToken;

// mimalloc: the event path allocates per request; glibc malloc was a
// quarter of the edge's CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // logs go to stderr: stdout carries what a command prints (`audit verify`)
    // LOG_FORMAT=json: one JSON object per line (for a log shipper)
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,async_nats=warn".into());
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    }
    let config = Config::parse();
    match config.command.clone().unwrap_or(CoreCommand::Serve) {
        CoreCommand::Serve => {
            let stop = CancellationToken::new();
            let on_signal = stop.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down");
                on_signal.cancel();
            });
            classroom_core::serve(config, stop).await
        }
        CoreCommand::Migrate => {
            let db = classroom_core::db::connect(&config).await?;
            classroom_core::db::migrate(&db).await
        }
        CoreCommand::SeedDemo { password, students } => {
            let db = classroom_core::db::connect(&config).await?;
            classroom_core::db::migrate(&db).await?;
            classroom_core::seed::demo(&db, &password, students).await
        }
        CoreCommand::NatsAuth { dir, edges } => {
            let edges = edges
                .into_iter()
                .map(|e| {
                    protocol::EdgeId::new(e.clone()).map_err(|err| anyhow::anyhow!("{e}: {err}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let covered = classroom_core::nats_auth::generate(&dir, &edges)?;
            tracing::info!(dir = %dir.display(), edges = ?covered, "NATS identities written");
            Ok(())
        }
        CoreCommand::EdgeOwner {
            edge,
            tenant,
            shared,
        } => {
            let db = classroom_core::db::connect(&config).await?;
            classroom_core::db::migrate(&db).await?;
            if tenant.is_none() && !shared {
                anyhow::bail!("say --tenant <slug> or --shared");
            }
            classroom_core::orchestration::edges::set_owner(&db, &edge, tenant.as_deref()).await
        }
        CoreCommand::RotateKeys => {
            let (kid, retired) = classroom_core::rotate_signing_keys(&config)?;
            println!("{}", serde_json::json!({ "kid": kid, "retired": retired }));
            tracing::info!(%kid, ?retired, "signing key rotated; restart core to sign with it");
            Ok(())
        }
        CoreCommand::Analytics {
            action: AnalyticsCommand::Rebuild { tenant },
        } => {
            let db = classroom_core::db::connect(&config).await?;
            classroom_core::db::migrate(&db).await?;
            let tenant = match tenant {
                Some(slug) => Some(classroom_core::db::tenant_by_slug(&db, &slug).await?),
                None => None,
            };
            let started = std::time::Instant::now();
            let (classes, events) = classroom_core::analytics::rebuild(
                &db,
                &config.public_url,
                tenant.map(|t| t.as_uuid()),
            )
            .await?;
            println!(
                "{}",
                serde_json::json!({ "classes": classes, "events": events,
                    "seconds": started.elapsed().as_secs_f64() })
            );
            tracing::info!(classes, events, "analytics rebuilt");
            Ok(())
        }
        CoreCommand::Audit {
            action: AuditCommand::Verify { tenant },
        } => {
            let db = classroom_core::db::connect(&config).await?;
            classroom_core::db::migrate(&db).await?;
            let tenant = match tenant {
                Some(slug) => Some(classroom_core::db::tenant_by_slug(&db, &slug).await?),
                None => None,
            };
            let report = classroom_core::audit::verify(&db, tenant).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.intact {
                tracing::error!(
                    breaks = report.breaks.len(),
                    "the audit log was tampered with"
                );
                std::process::exit(1);
            }
            tracing::info!(
                rows = report.rows,
                tenants = report.tenants,
                "every audit chain is whole"
            );
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
