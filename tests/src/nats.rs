//! NATS servers for a stack: a hub (JetStream domain `core`) and leaf nodes
//! (each with its own domain), all with file storage synced on every write.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::Proc;
use crate::{free_port, wait_until, workspace_root};

pub fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    workspace_root().join(".tools/bin/nats-server")
}

pub struct NatsServer {
    pub name: String,
    pub port: u16,
    /// The hub's leaf-node listener (hubs only).
    pub leaf_port: Option<u16>,
    pub proc: Proc,
    config: PathBuf,
    log: PathBuf,
}

impl NatsServer {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn leaf_addr(&self) -> Option<SocketAddr> {
        self.leaf_port
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
    }

    /// A hub. `advertise` is the leaf address it gossips (a proxy, when a
    /// test will cut the link: otherwise leaves reconnect around it).
    pub async fn hub(dir: &Path, advertise: Option<SocketAddr>) -> anyhow::Result<NatsServer> {
        let port = free_port();
        let leaf_port = free_port();
        let store = dir.join("hub-store");
        let advertise = advertise
            .map(|a| format!("  advertise: \"{a}\"\n"))
            .unwrap_or_default();
        let conf = format!(
            "server_name: hub\nlisten: 127.0.0.1:{port}\n\
             jetstream {{\n  store_dir: \"{}\"\n  domain: core\n  sync_interval: always\n}}\n\
             leafnodes {{\n  listen: 127.0.0.1:{leaf_port}\n{advertise}}}\n",
            store.display()
        );
        Self::launch("hub", dir, port, Some(leaf_port), conf).await
    }

    /// A leaf node with JetStream domain `domain`, connecting to `hub_leaf`.
    pub async fn leaf(
        dir: &Path,
        domain: &str,
        hub_leaf: SocketAddr,
    ) -> anyhow::Result<NatsServer> {
        let port = free_port();
        let store = dir.join(format!("{domain}-store"));
        let conf = format!(
            "server_name: {domain}\nlisten: 127.0.0.1:{port}\n\
             jetstream {{\n  store_dir: \"{}\"\n  domain: {domain}\n  sync_interval: always\n}}\n\
             leafnodes {{\n  reconnect: 1\n  remotes: [ {{ url: \"nats-leaf://{hub_leaf}\" }} ]\n}}\n",
            store.display()
        );
        Self::launch(domain, dir, port, None, conf).await
    }

    async fn launch(
        name: &str,
        dir: &Path,
        port: u16,
        leaf_port: Option<u16>,
        conf: String,
    ) -> anyhow::Result<NatsServer> {
        let config = dir.join(format!("{name}.conf"));
        std::fs::write(&config, conf)?;
        let log = dir.join(format!("{name}.log"));
        let proc = Proc::spawn(
            &format!("nats-{name}"),
            &nats_server_bin(),
            &["-c".to_owned(), config.display().to_string()],
            &[],
            log.clone(),
        )?;
        let server = NatsServer {
            name: name.to_owned(),
            port,
            leaf_port,
            proc,
            config,
            log,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let port = self.port;
        wait_until(
            &format!("nats {} to listen", self.name),
            Duration::from_secs(15),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await
    }

    /// Restarts the server with the same config and store (after a kill).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.proc.kill().await;
        self.proc = Proc::spawn(
            &format!("nats-{}", self.name),
            &nats_server_bin(),
            &["-c".to_owned(), self.config.display().to_string()],
            &[],
            self.log.clone(),
        )?;
        self.wait_ready().await
    }

    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        Ok(async_nats::connect(self.url()).await?)
    }
}
