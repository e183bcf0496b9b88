//! A whole stack on loopback: NATS hub + leaves, Postgres database, core,
//! edges; optionally a cuttable proxy on one edge's leaf link.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::api::Api;
use crate::nats::{NatsAuth, NatsServer};
use crate::process::Proc;
use crate::proxy::TcpProxy;
use crate::{bin_dir, free_port, pg_base_url, wait_until};

pub const PASSWORD: &str = "classroom-test-pw";

#[derive(Clone)]
pub struct StackOptions {
    pub edges: Vec<&'static str>,
    /// The edge whose leaf link runs through a cuttable proxy.
    pub proxied_edge: Option<&'static str>,
    pub students: u32,
    /// Extra command-line arguments for every edge.
    pub edge_args: Vec<String>,
    /// Compose and record classes (GStreamer; costs a third of a core per
    /// class, so only the tests about recording turn it on).
    pub recording: bool,
    /// Run a MoQ relay (dev CA, core's tokens) and point every edge at it.
    pub relay: bool,
    /// Caption recorded classes live (whisper on the edge: a model load and
    /// a share of a core per class, so only the caption tests turn it on).
    /// The model is the edge's default (`asr::model_path`).
    pub captions: bool,
    /// Run core's artifact pipeline (Whisper over every recording: only the
    /// tests about artifacts turn it on).
    pub artifacts: bool,
    /// Extra command-line arguments for core.
    pub core_args: Vec<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            edges: vec!["edge-a"],
            proxied_edge: None,
            students: 10,
            edge_args: Vec::new(),
            recording: false,
            relay: false,
            captions: false,
            artifacts: false,
            core_args: Vec::new(),
        }
    }
}

pub struct EdgeProc {
    pub id: String,
    pub url: String,
    pub port: u16,
    pub leaf: NatsServer,
    pub proxy: Option<TcpProxy>,
    pub proc: Proc,
    args: Vec<String>,
    log: PathBuf,
}

impl EdgeProc {
    /// Kills the edge like a crash (SIGKILL).
    pub async fn kill(&mut self) {
        self.proc.kill().await;
    }

    /// Starts the edge again with the same config and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.proc.kill().await;
        self.proc = Proc::spawn(
            &self.id,
            &bin_dir().join("edge-node"),
            &self.args,
            &[],
            self.log.clone(),
        )?;
        wait_healthy(&format!("{} healthz", self.id), &self.url).await
    }
}

/// The stack's relay: `moqt://` URL and the CA its certificate chains to.
pub struct RelayProc {
    pub url: String,
    pub ca_pem: PathBuf,
    pub port: u16,
    pub proc: Proc,
    args: Vec<String>,
    log: PathBuf,
}

impl RelayProc {
    /// Kills the relay like a crash (SIGKILL).
    pub async fn kill(&mut self) {
        self.proc.kill().await;
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.proc.kill().await;
        self.proc = Proc::spawn(
            "relay",
            &bin_dir().join("relay"),
            &self.args,
            &[],
            self.log.clone(),
        )?;
        wait_healthy("relay healthz", &format!("http://127.0.0.1:{}", self.port)).await
    }
}

pub struct Stack {
    pub dir: TempDir,
    pub relay: Option<RelayProc>,
    pub hub: NatsServer,
    /// The NATS identities (`core nats-auth`) and the dev CA.
    pub nats_auth: NatsAuth,
    pub edges: Vec<EdgeProc>,
    pub core: Proc,
    pub core_url: String,
    pub db_url: String,
    db_name: String,
    core_args: Vec<String>,
    core_log: PathBuf,
    pub api: Api,
}

async fn wait_healthy(what: &str, base: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let url = format!("{base}/healthz");
    wait_until(what, Duration::from_secs(60), || {
        let http = http.clone();
        let url = url.clone();
        async move {
            match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            }
        }
    })
    .await
}

impl Stack {
    pub async fn start(opts: StackOptions) -> anyhow::Result<Stack> {
        crate::init_tracing();
        let mut dir = tempfile::Builder::new()
            .prefix("classroom-e2e-")
            .tempdir()?;
        if std::env::var_os("CLASSROOM_KEEP_LOGS").is_some() {
            // keep configs, stores and logs for a post-mortem
            dir.disable_cleanup(true);
            eprintln!("stack files kept in {}", dir.path().display());
        }
        let proxy_port = opts.proxied_edge.map(|_| free_port());
        let nats_auth = NatsAuth::make(dir.path(), &opts.edges).await?;
        let hub = NatsServer::hub(
            dir.path(),
            proxy_port.map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p))),
            &nats_auth,
        )
        .await?;
        let hub_leaf = hub.leaf_addr().expect("hub has a leaf port");

        let db_name = format!("ct_{}", uuid::Uuid::now_v7().simple());
        let db_url = format!("{}/{}", pg_base_url(), db_name);
        let core_port = free_port();
        let core_url = format!("http://127.0.0.1:{core_port}");
        let core_data = dir.path().join("core");
        let core_args = vec![
            "--listen".to_owned(),
            format!("127.0.0.1:{core_port}"),
            "--public-url".to_owned(),
            core_url.clone(),
            "--database-url".to_owned(),
            db_url.clone(),
            "--nats-url".to_owned(),
            hub.url(),
            "--nats-seed-file".to_owned(),
            nats_auth.seed_file("core").display().to_string(),
            "--data-dir".to_owned(),
            core_data.display().to_string(),
            "--edge-stale-ms".to_owned(),
            "3000".to_owned(),
            "--edge-timeout-ms".to_owned(),
            "3000".to_owned(),
            "--object-store-dir".to_owned(),
            dir.path().join("objects").display().to_string(),
        ];
        let mut core_args = core_args;
        core_args.extend(["--artifacts".to_owned(), opts.artifacts.to_string()]);
        // this checkout's web app, whichever checkout built the binary
        core_args.extend([
            "--web-dir".to_owned(),
            crate::workspace_root()
                .join("web/dist")
                .display()
                .to_string(),
        ]);
        core_args.extend(opts.core_args.iter().cloned());
        let core_bin = bin_dir().join("core");
        let mut seed_args = core_args.clone();
        seed_args.extend([
            "seed-demo".to_owned(),
            "--password".to_owned(),
            PASSWORD.to_owned(),
            "--students".to_owned(),
            opts.students.to_string(),
        ]);
        let seed_log = dir.path().join("seed.log");
        let status = tokio::process::Command::new(&core_bin)
            .args(&seed_args)
            .stdout(std::fs::File::create(&seed_log)?)
            .stderr(std::fs::File::create(dir.path().join("seed.err"))?)
            .status()
            .await?;
        anyhow::ensure!(
            status.success(),
            "seeding failed: {}",
            std::fs::read_to_string(dir.path().join("seed.err")).unwrap_or_default()
        );
        let core_log = dir.path().join("core.log");
        let core = Proc::spawn("core", &core_bin, &core_args, &[], core_log.clone())?;
        if let Err(e) = wait_healthy("core healthz", &core_url).await {
            anyhow::bail!("{e}\n{}", core.tail(40));
        }

        let relay = if opts.relay {
            // a port picked free can be taken by a concurrent test before the
            // relay binds it: a relay that exits at start gets a fresh port
            let mut attempt = 0;
            let (port, args, log, proc) = loop {
                attempt += 1;
                let port = crate::free_udp_tcp_port();
                let args = vec![
                    "--listen".to_owned(),
                    format!("127.0.0.1:{port}"),
                    "--dev-ca-dir".to_owned(),
                    dir.path().join("relay-ca").display().to_string(),
                    "--core-url".to_owned(),
                    core_url.clone(),
                ];
                let log = dir.path().join("relay.log");
                let mut proc =
                    Proc::spawn("relay", &bin_dir().join("relay"), &args, &[], log.clone())?;
                match wait_healthy("relay healthz", &format!("http://127.0.0.1:{port}")).await {
                    Ok(()) => break (port, args, log, proc),
                    Err(e) if attempt >= 3 || proc.is_running() => {
                        anyhow::bail!("{e}\n{}", proc.tail(40));
                    }
                    Err(_) => {
                        eprintln!(
                            "relay did not start on {port}; another port\n{}",
                            proc.tail(5)
                        );
                    }
                }
            };
            Some(RelayProc {
                url: format!("moqt://127.0.0.1:{port}"),
                ca_pem: dir.path().join("relay-ca").join("ca.pem"),
                port,
                proc,
                args,
                log,
            })
        } else {
            None
        };

        let mut edges = Vec::new();
        for id in &opts.edges {
            let proxied = opts.proxied_edge == Some(*id);
            let proxy = match (proxied, proxy_port) {
                (true, Some(p)) => Some(TcpProxy::start(p, hub_leaf).await?),
                _ => None,
            };
            let upstream = proxy.as_ref().map(|p| p.addr).unwrap_or(hub_leaf);
            let leaf = NatsServer::leaf(dir.path(), id, upstream, &nats_auth).await?;
            let port = free_port();
            let url = format!("http://127.0.0.1:{port}");
            let mut args = vec![
                "--edge-id".to_owned(),
                id.to_string(),
                "--listen".to_owned(),
                format!("127.0.0.1:{port}"),
                "--public-url".to_owned(),
                url.clone(),
                "--nats-url".to_owned(),
                leaf.url(),
                "--nats-seed-file".to_owned(),
                nats_auth
                    .seed_file(&format!("{id}.local"))
                    .display()
                    .to_string(),
                "--core-url".to_owned(),
                core_url.clone(),
                "--data-dir".to_owned(),
                dir.path().join(id).display().to_string(),
                "--heartbeat-ms".to_owned(),
                "500".to_owned(),
                // each edge is its own campus: `campus-a` for `edge-a`
                "--region".to_owned(),
                format!("campus-{}", id.trim_start_matches("edge-")),
                "--media-udp".to_owned(),
                format!("127.0.0.1:{}", crate::free_udp_port()),
                "--media-grace-ms".to_owned(),
                "1500".to_owned(),
                "--media-quality-ms".to_owned(),
                "1000".to_owned(),
                "--media-idle-ms".to_owned(),
                "2500".to_owned(),
                "--recording".to_owned(),
                opts.recording.to_string(),
                "--captions".to_owned(),
                opts.captions.to_string(),
                "--object-store-dir".to_owned(),
                dir.path().join("objects").display().to_string(),
            ];
            if let Some(r) = &relay {
                args.extend([
                    "--relay-url".to_owned(),
                    r.url.clone(),
                    "--relay-ca".to_owned(),
                    r.ca_pem.display().to_string(),
                ]);
            }
            args.extend(opts.edge_args.iter().cloned());
            let log = dir.path().join(format!("{id}.log"));
            let proc = Proc::spawn(id, &bin_dir().join("edge-node"), &args, &[], log.clone())?;
            if let Err(e) = wait_healthy(&format!("{id} healthz"), &url).await {
                anyhow::bail!("{e}\n{}", proc.tail(40));
            }
            edges.push(EdgeProc {
                id: id.to_string(),
                url,
                port,
                leaf,
                proxy,
                proc,
                args,
                log,
            });
        }

        let api = Api::new(core_url.clone());
        let stack = Stack {
            dir,
            relay,
            hub,
            nats_auth,
            edges,
            core,
            core_url,
            db_url,
            db_name,
            core_args,
            core_log,
            api,
        };
        // Core knows every edge as healthy, and each edge has core's keys.
        let admin = stack.api.login("admin@demo.test").await?;
        for e in &stack.edges {
            let id = e.id.clone();
            let api = stack.api.clone();
            let admin = admin.clone();
            wait_until(
                &format!("core to see {id} healthy"),
                Duration::from_secs(30),
                || {
                    let (api, admin, id) = (api.clone(), admin.clone(), id.clone());
                    async move {
                        let (_, v) = api.get("/edges", &admin).await.ok()?;
                        v["edges"]
                            .as_array()?
                            .iter()
                            .any(|x| x["id"] == id.as_str() && x["healthy"] == true)
                            .then_some(())
                    }
                },
            )
            .await?;
            let url = e.url.clone();
            wait_until(
                &format!("{id} to have core's keys"),
                Duration::from_secs(30),
                || {
                    let url = url.clone();
                    async move {
                        let v: Value = reqwest::get(format!("{url}/healthz"))
                            .await
                            .ok()?
                            .json()
                            .await
                            .ok()?;
                        (v["keys"] == true).then_some(())
                    }
                },
            )
            .await?;
        }
        Ok(stack)
    }

    pub fn edge(&mut self, id: &str) -> &mut EdgeProc {
        self.edges
            .iter_mut()
            .find(|e| e.id == id)
            .expect("no such edge in this stack")
    }

    pub fn edge_url(&self, id: &str) -> String {
        self.edges
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.url.clone())
            .expect("no such edge")
    }

    /// Kills core like a crash.
    pub async fn kill_core(&mut self) {
        self.core.kill().await;
    }

    /// `core edge-owner`: the edge belongs to the tenant with `slug`, or is
    /// shared (None), as `deploy/dev.sh` sets them.
    pub async fn set_edge_owner(&self, edge: &str, slug: Option<&str>) -> anyhow::Result<()> {
        let mut args = vec!["edge-owner".to_owned(), edge.to_owned()];
        match slug {
            Some(t) => args.extend(["--tenant".to_owned(), t.to_owned()]),
            None => args.push("--shared".to_owned()),
        }
        self.core_command(&args).await.map(|_| ())
    }

    /// Runs a `core` subcommand with the stack's core flags (its database,
    /// data directory); returns what it printed on stdout.
    pub async fn core_command(&self, command: &[String]) -> anyhow::Result<String> {
        let mut args = self.core_args.clone();
        args.extend(command.iter().cloned());
        let out = tokio::process::Command::new(bin_dir().join("core"))
            .args(&args)
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "core {command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub async fn restart_core(&mut self) -> anyhow::Result<()> {
        self.core.kill().await;
        self.core = Proc::spawn(
            "core",
            &bin_dir().join("core"),
            &self.core_args,
            &[],
            self.core_log.clone(),
        )?;
        wait_healthy("core healthz", &self.core_url).await
    }

    /// Every message of the hub stream (core's domain), as text.
    pub async fn hub_stream_text(&self) -> anyhow::Result<Vec<String>> {
        self.hub
            .stream_text(
                protocol::subjects::HUB_DOMAIN,
                protocol::subjects::HUB_STREAM,
            )
            .await
    }

    /// A pool on the stack's database, for assertions on stored rows.
    pub async fn db(&self) -> anyhow::Result<sqlx::PgPool> {
        Ok(sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.db_url)
            .await?)
    }

    /// Logs of every process, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut out = format!("--- core\n{}\n", self.core.tail(60));
        for e in &self.edges {
            out += &format!("--- {}\n{}\n", e.id, e.proc.tail(60));
        }
        if let Some(r) = &self.relay {
            out += &format!("--- relay\n{}\n", r.proc.tail(30));
        }
        out
    }

    /// Stops everything and drops the database.
    pub async fn shutdown(mut self) {
        for e in &mut self.edges {
            e.proc.kill().await;
            e.leaf.proc.kill().await;
        }
        if let Some(r) = &mut self.relay {
            r.proc.kill().await;
        }
        self.core.kill().await;
        self.hub.proc.kill().await;
        drop_database(&self.db_name).await;
    }
}

async fn drop_database(name: &str) {
    let url = format!("{}/postgres", pg_base_url());
    if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
    {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}
