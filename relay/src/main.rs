//! The relay process: `relay [flags]` serves; `relay gen-dev-ca <dir>`
//! writes a development CA and relay certificate.

use clap::Parser;
use relay::{Cli, Command, Relay};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs on stderr: stdout carries only the `LISTENING <addr>` line.
    // LOG_FORMAT=json: one JSON object per line (for a log shipper)
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
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
    let cli = Cli::parse();
    match cli.command {
        Some(Command::GenDevCa { dir, names, cert }) => {
            let (files, outcome) = relay::dev_ca::ensure_cert(&dir, &cert, &names)?;
            println!(
                "{outcome:?}: CA {} (trust this), {cert} cert {} key {}",
                files.ca_cert.display(),
                files.cert.display(),
                files.key.display()
            );
            Ok(())
        }
        None => {
            let relay = Relay::bind(&cli.config).await?;
            // Tests and scripts read the bound address from here (port 0).
            println!("LISTENING {}", relay.local_addr());
            let shutdown = CancellationToken::new();
            let trigger = shutdown.clone();
            tokio::spawn(async move {
                wait_for_signal().await;
                trigger.cancel();
            });
            relay.run(shutdown).await?;
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
