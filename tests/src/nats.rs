//! NATS servers for a stack: a hub (JetStream domain `core`) and leaf nodes
//! (each with its own domain), all with file storage synced on every write,
//! configured like the dev stack: identities and authorization from
//! `core nats-auth`, the leaf links over TLS from the dev CA (`relay
//! gen-dev-ca --cert nats-hub`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::Proc;
use crate::{bin_dir, free_port, wait_until, workspace_root};

/// The stack's NATS identities and TLS files.
#[derive(Debug, Clone)]
pub struct NatsAuth {
    /// `core nats-auth`'s directory: seeds and authorization configs.
    pub dir: PathBuf,
    /// The dev CA (`ca.pem`) and the hub's leaf-node certificate.
    pub ca_dir: PathBuf,
}

impl NatsAuth {
    /// Runs the same commands as `deploy/dev.sh` for these edges.
    pub async fn make(dir: &Path, edges: &[&str]) -> anyhow::Result<NatsAuth> {
        Self::make_for(dir, edges, &[]).await
    }

    /// Like [`make`](Self::make), the hub's certificate also naming
    /// `hub_names` (the address a campus on another network dials).
    pub async fn make_for(
        dir: &Path,
        edges: &[&str],
        hub_names: &[String],
    ) -> anyhow::Result<NatsAuth> {
        let auth = NatsAuth {
            dir: dir.join("nats-auth"),
            ca_dir: dir.join("relay-ca"),
        };
        let mut args = vec!["nats-auth".to_owned(), "--dir".to_owned()];
        args.push(auth.dir.display().to_string());
        for e in edges {
            args.extend(["--edge".to_owned(), (*e).to_owned()]);
        }
        run(&bin_dir().join("core"), &args).await?;
        let mut ca_args = vec![
            "gen-dev-ca".to_owned(),
            auth.ca_dir.display().to_string(),
            "--cert".to_owned(),
            "nats-hub".to_owned(),
        ];
        for n in hub_names {
            ca_args.extend(["--name".to_owned(), n.clone()]);
        }
        run(&bin_dir().join("relay"), &ca_args).await?;
        Ok(auth)
    }

    pub fn seed_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.seed"))
    }

    /// The seed in `<name>.seed` (`core`, `edge-a.local`, `edge-a.leaf`).
    pub fn seed(&self, name: &str) -> String {
        std::fs::read_to_string(self.seed_file(name))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }
}

/// nats-server resolves `include` relative to the including file's folder
/// (absolute paths too), so configs written into `dir` name their includes
/// from there.
fn include_path(dir: &Path, file: &Path) -> String {
    file.strip_prefix(dir).unwrap_or(file).display().to_string()
}

pub(crate) async fn run(bin: &Path, args: &[String]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new(bin)
        .args(args)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "{} {}: {}",
        bin.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

pub fn nats_server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    workspace_root().join(".tools/bin/nats-server")
}

pub struct NatsServer {
    pub name: String,
    pub port: u16,
    /// The address the hub's leaf-node listener binds (hubs only).
    leaf_host: String,
    /// The network namespace the server runs in (None: the test's own).
    netns: Option<String>,
    /// The hub's leaf-node listener (hubs only).
    pub leaf_port: Option<u16>,
    pub proc: Proc,
    /// The seed of the user test clients connect as: core's on the hub,
    /// the edge process's on a leaf.
    seed: String,
    /// Reply inboxes the server's usual user may receive on the hub.
    inbox_prefix: String,
    config: PathBuf,
    log: PathBuf,
}

impl NatsServer {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn leaf_addr(&self) -> Option<SocketAddr> {
        let host: std::net::IpAddr = self.leaf_host.parse().ok()?;
        self.leaf_port.map(|p| SocketAddr::from((host, p)))
    }

    /// A hub. `advertise` is the leaf address it gossips (a proxy, when a
    /// test will cut the link: otherwise leaves reconnect around it).
    pub async fn hub(
        dir: &Path,
        advertise: Option<SocketAddr>,
        auth: &NatsAuth,
    ) -> anyhow::Result<NatsServer> {
        Self::hub_on(dir, advertise, auth, "127.0.0.1").await
    }

    /// A hub whose leaf-node listener binds `leaf_host` (a campus on
    /// another network dials it there); clients stay on loopback.
    pub async fn hub_on(
        dir: &Path,
        advertise: Option<SocketAddr>,
        auth: &NatsAuth,
        leaf_host: &str,
    ) -> anyhow::Result<NatsServer> {
        let port = free_port();
        let leaf_port = free_port();
        let store = dir.join("hub-store");
        let advertise = advertise
            .map(|a| format!("  advertise: \"{a}\"\n"))
            .unwrap_or_default();
        let ca = &auth.ca_dir;
        let conf = format!(
            "server_name: hub\nlisten: 127.0.0.1:{port}\n\
             jetstream {{\n  store_dir: \"{}\"\n  domain: core\n  sync_interval: always\n}}\n\
             include \"{}\"\n\
             leafnodes {{\n  listen: {leaf_host}:{leaf_port}\n{advertise}\
               tls {{ cert_file: \"{}\", key_file: \"{}\", timeout: 2 }}\n}}\n",
            store.display(),
            include_path(dir, &auth.dir.join("hub-users.conf")),
            ca.join("nats-hub.pem").display(),
            ca.join("nats-hub.key").display(),
        );
        let inbox = protocol::subjects::CORE_INBOX_PREFIX.to_owned();
        Self::launch(
            ("hub", None),
            dir,
            port,
            Some((leaf_host, leaf_port)),
            conf,
            auth.seed("core"),
            inbox,
        )
        .await
    }

    /// A leaf node with JetStream domain `domain` (the edge's id), connecting
    /// to `hub_leaf` as that edge.
    pub async fn leaf(
        dir: &Path,
        domain: &str,
        hub_leaf: SocketAddr,
        auth: &NatsAuth,
    ) -> anyhow::Result<NatsServer> {
        Self::leaf_in(dir, domain, hub_leaf, auth, None).await
    }

    /// Like [`leaf`](Self::leaf), run inside network namespace `netns`
    /// (the campus box; it listens on that namespace's loopback).
    pub async fn leaf_in(
        dir: &Path,
        domain: &str,
        hub_leaf: SocketAddr,
        auth: &NatsAuth,
        netns: Option<&str>,
    ) -> anyhow::Result<NatsServer> {
        let port = free_port();
        let store = dir.join(format!("{domain}-store"));
        let conf = format!(
            "server_name: {domain}\nlisten: 127.0.0.1:{port}\n\
             jetstream {{\n  store_dir: \"{}\"\n  domain: {domain}\n  sync_interval: always\n}}\n\
             include \"{}\"\n\
             leafnodes {{\n  reconnect: 1\n  remotes: [ {{\n    url: \"nats-leaf://{hub_leaf}\"\n    \
             include \"{}\"\n    tls {{ ca_file: \"{}\" }}\n  }} ]\n}}\n",
            store.display(),
            include_path(dir, &auth.dir.join(format!("{domain}-leaf-users.conf"))),
            include_path(dir, &auth.dir.join(format!("{domain}-remote.conf"))),
            auth.ca_dir.join("ca.pem").display(),
        );
        let seed = auth.seed(&format!("{domain}.local"));
        let inbox = protocol::EdgeId::new(domain.to_owned())
            .map(|e| protocol::subjects::edge_inbox_prefix(&e))
            .map_err(|e| anyhow::anyhow!("{domain}: {e}"))?;
        Self::launch((domain, netns), dir, port, None, conf, seed, inbox).await
    }

    async fn launch(
        (name, netns): (&str, Option<&str>),
        dir: &Path,
        port: u16,
        leaf: Option<(&str, u16)>,
        conf: String,
        seed: String,
        inbox_prefix: String,
    ) -> anyhow::Result<NatsServer> {
        let config = dir.join(format!("{name}.conf"));
        std::fs::write(&config, conf)?;
        let log = dir.join(format!("{name}.log"));
        let (bin, args) = crate::netns::wrap_in(
            netns,
            &nats_server_bin(),
            &["-c".to_owned(), config.display().to_string()],
        );
        let proc = Proc::spawn(&format!("nats-{name}"), &bin, &args, &[], log.clone())?;
        let server = NatsServer {
            name: name.to_owned(),
            port,
            leaf_host: leaf.map(|l| l.0).unwrap_or("127.0.0.1").to_owned(),
            netns: netns.map(str::to_owned),
            leaf_port: leaf.map(|l| l.1),
            proc,
            seed,
            inbox_prefix,
            config,
            log,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let port = self.port;
        let netns = self.netns.as_deref();
        wait_until(
            &format!("nats {} to listen", self.name),
            Duration::from_secs(15),
            || async move { crate::netns::listening_in(netns, port).await.then_some(()) },
        )
        .await
    }

    /// Restarts the server with the same config and store (after a kill).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.proc.kill().await;
        let (bin, args) = crate::netns::wrap_in(
            self.netns.as_deref(),
            &nats_server_bin(),
            &["-c".to_owned(), self.config.display().to_string()],
        );
        self.proc = Proc::spawn(
            &format!("nats-{}", self.name),
            &bin,
            &args,
            &[],
            self.log.clone(),
        )?;
        self.wait_ready().await
    }

    /// A client with the server's usual user (core's on the hub, the
    /// edge process's on a leaf).
    pub async fn client(&self) -> anyhow::Result<async_nats::Client> {
        self.client_as(&self.seed).await
    }

    /// A client with the nkey `seed`.
    pub async fn client_as(&self, seed: &str) -> anyhow::Result<async_nats::Client> {
        Ok(async_nats::ConnectOptions::with_nkey(seed.to_owned())
            .custom_inbox_prefix(&self.inbox_prefix)
            .connect(self.url())
            .await?)
    }

    /// Every message of `stream` in JetStream `domain`, as text, oldest
    /// first (read as this server's usual user).
    pub async fn stream_text(&self, domain: &str, stream: &str) -> anyhow::Result<Vec<String>> {
        use async_nats::jetstream;
        use futures::StreamExt;
        let js = jetstream::with_domain(self.client().await?, domain);
        let consumer = js
            .get_stream(stream)
            .await?
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        let mut out = Vec::new();
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(Duration::from_secs(2), messages.next()).await
        {
            out.push(String::from_utf8_lossy(&m.payload).into_owned());
            if m.info().map(|i| i.pending).unwrap_or(0) == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// The seed [`client`](Self::client) uses.
    pub fn seed(&self) -> &str {
        &self.seed
    }
}
