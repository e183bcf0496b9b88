//! A whole stack on loopback: NATS hub + leaves, Postgres database, core,
//! edges; optionally a cuttable proxy on one edge's leaf link.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::api::Api;
use crate::garage::{Garage, S3Key};
use crate::nats::{NatsAuth, NatsServer};
use crate::netns::Site;
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
    /// Object storage in a real S3 server (Garage) instead of a shared
    /// directory: core and each edge reach the bucket with their own key.
    pub s3: bool,
    /// Core and the edges serve HTTPS (certificates from the dev CA, which
    /// the stack's clients and the edges trust).
    pub https: bool,
    /// The edge that runs on a campus network of its own: its box (edge and
    /// NATS leaf) in a network namespace, reaching core, the hub and S3 over
    /// a veth WAN the test can cut ([`Stack::site`]), its students over a
    /// campus LAN link.
    pub site: Option<&'static str>,
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
            s3: false,
            https: false,
            site: None,
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
    http: reqwest::Client,
    args: Vec<String>,
    env: Vec<(String, String)>,
    netns: Option<String>,
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
        let (bin, args) = crate::netns::wrap_in(
            self.netns.as_deref(),
            &bin_dir().join("edge-node"),
            &self.args,
        );
        self.proc = Proc::spawn(&self.id, &bin, &args, &self.env, self.log.clone())?;
        wait_healthy(&self.http, &format!("{} healthz", self.id), &self.url).await
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
        wait_healthy(
            &reqwest::Client::new(),
            "relay healthz",
            &format!("http://127.0.0.1:{}", self.port),
        )
        .await
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
    core_env: Vec<(String, String)>,
    core_log: PathBuf,
    pub api: Api,
    /// The S3 server (`StackOptions::s3`) and the key core uses.
    pub garage: Option<(Garage, S3Key)>,
    /// The dev CA the stack's HTTPS certificates chain to.
    pub ca_pem: Option<PathBuf>,
    /// The campus network of `StackOptions::site` (dropped last: deleting
    /// the namespace is the last thing a stack does).
    pub site: Option<Site>,
}

/// A client trusting the dev CA at `ca` (for a stack serving HTTPS).
pub fn client_trusting(ca: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder();
    if let Some(ca) = ca {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca)?)?);
    }
    Ok(b.build()?)
}

async fn wait_healthy(http: &reqwest::Client, what: &str, base: &str) -> anyhow::Result<()> {
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
        let site = opts.site.map(|_| Site::create()).transpose()?;
        // where core, the hub's leaf port and S3 listen: loopback, or core's
        // end of the campus WAN
        let host = site
            .as_ref()
            .map(|s| s.wan_core.clone())
            .unwrap_or_else(|| "127.0.0.1".to_owned());
        let nats_auth =
            NatsAuth::make_for(dir.path(), &opts.edges, std::slice::from_ref(&host)).await?;
        let hub = NatsServer::hub_on(
            dir.path(),
            proxy_port.map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p))),
            &nats_auth,
            &host,
        )
        .await?;
        let ca_pem = opts.https.then(|| nats_auth.ca_dir.join("ca.pem"));
        let http = client_trusting(ca_pem.as_deref())?;
        let garage = if opts.s3 {
            let g = Garage::start(dir.path(), &host).await?;
            let key = g.key("core").await?;
            Some((g, key))
        } else {
            None
        };
        let hub_leaf = hub.leaf_addr().expect("hub has a leaf port");

        let db_name = format!("ct_{}", uuid::Uuid::now_v7().simple());
        let db_url = format!("{}/{}", pg_base_url(), db_name);
        let core_port = free_port();
        let scheme = if opts.https { "https" } else { "http" };
        let core_url = format!("{scheme}://{host}:{core_port}");
        let core_data = dir.path().join("core");
        let core_args = vec![
            "--listen".to_owned(),
            format!("{host}:{core_port}"),
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
        ];
        let mut core_args = core_args;
        let mut core_env = Vec::new();
        match &garage {
            Some((g, key)) => {
                core_args.extend([
                    "--object-store-url".to_owned(),
                    format!("s3://{}", crate::garage::BUCKET),
                ]);
                core_env = g.env(key);
            }
            None => core_args.extend([
                "--object-store-dir".to_owned(),
                dir.path().join("objects").display().to_string(),
            ]),
        }
        if opts.https {
            let (cert, key) = dev_cert(&nats_auth.ca_dir, "core", &host).await?;
            core_args.extend(["--tls-cert".to_owned(), cert, "--tls-key".to_owned(), key]);
        }
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
            .envs(core_env.iter().cloned())
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
        let core = Proc::spawn("core", &core_bin, &core_args, &core_env, core_log.clone())?;
        if let Err(e) = wait_healthy(&http, "core healthz", &core_url).await {
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
                match wait_healthy(
                    &reqwest::Client::new(),
                    "relay healthz",
                    &format!("http://127.0.0.1:{port}"),
                )
                .await
                {
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
            // the campus edge's box is a namespace of its own
            let netns = site
                .as_ref()
                .filter(|_| opts.site == Some(*id))
                .map(|s| s.ns.clone());
            let leaf =
                NatsServer::leaf_in(dir.path(), id, upstream, &nats_auth, netns.as_deref()).await?;
            let port = free_port();
            let (listen, addr) = match (&netns, &site) {
                (Some(_), Some(s)) => (format!("0.0.0.0:{port}"), s.lan_edge.clone()),
                _ => (format!("127.0.0.1:{port}"), "127.0.0.1".to_owned()),
            };
            let url = format!("{scheme}://{addr}:{port}");
            let mut args = vec![
                "--edge-id".to_owned(),
                id.to_string(),
                "--listen".to_owned(),
                listen,
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
                format!("{addr}:{}", crate::free_udp_port()),
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
            ];
            let mut env = Vec::new();
            match &garage {
                Some((g, _)) => {
                    // each edge its own S3 key; no filesystem shared with core
                    let key = g.key(id).await?;
                    args.extend([
                        "--object-store-url".to_owned(),
                        format!("s3://{}", crate::garage::BUCKET),
                    ]);
                    env = g.env(&key);
                }
                None => args.extend([
                    "--object-store-dir".to_owned(),
                    dir.path().join("objects").display().to_string(),
                ]),
            }
            if let Some(ca) = &ca_pem {
                let (cert, key) = dev_cert(&nats_auth.ca_dir, id, &addr).await?;
                args.extend([
                    "--tls-cert".to_owned(),
                    cert,
                    "--tls-key".to_owned(),
                    key,
                    "--core-ca".to_owned(),
                    ca.display().to_string(),
                ]);
            }
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
            let (bin, wrapped) =
                crate::netns::wrap_in(netns.as_deref(), &bin_dir().join("edge-node"), &args);
            let proc = Proc::spawn(id, &bin, &wrapped, &env, log.clone())?;
            if let Err(e) = wait_healthy(&http, &format!("{id} healthz"), &url).await {
                anyhow::bail!("{e}\n{}", proc.tail(40));
            }
            edges.push(EdgeProc {
                id: id.to_string(),
                url,
                port,
                leaf,
                proxy,
                proc,
                http: http.clone(),
                args,
                env,
                netns,
                log,
            });
        }

        let api = Api::with_client(core_url.clone(), http.clone());
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
            core_env,
            core_log,
            api,
            garage,
            ca_pem,
            site,
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
                    let (url, http) = (url.clone(), http.clone());
                    async move {
                        let v: Value = http
                            .get(format!("{url}/healthz"))
                            .send()
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
            .envs(self.core_env.iter().cloned())
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
            &self.core_env,
            self.core_log.clone(),
        )?;
        wait_healthy(&self.api.http, "core healthz", &self.core_url).await
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

    /// Deletes the durable consumer `name` of the hub stream (stop core
    /// first: when it comes back it makes the consumer anew, from the
    /// stream's start, so every message is delivered again).
    pub async fn delete_hub_consumer(&self, name: &str) -> anyhow::Result<()> {
        let js = async_nats::jetstream::with_domain(
            self.hub.client().await?,
            protocol::subjects::HUB_DOMAIN,
        );
        js.delete_consumer_from_stream(name, protocol::subjects::HUB_STREAM)
            .await
            .map_err(|e| anyhow::anyhow!("deleting consumer {name}: {e}"))?;
        Ok(())
    }

    /// Waits until the durable consumer `name` of the hub stream has had
    /// every message delivered and acknowledged.
    pub async fn hub_consumer_drained(&self, name: &str, deadline: Duration) -> anyhow::Result<()> {
        let hub = self.hub.client().await?;
        wait_until(&format!("{name} acknowledged everything"), deadline, || {
            let hub = hub.clone();
            async move {
                let js = async_nats::jetstream::with_domain(hub, protocol::subjects::HUB_DOMAIN);
                let mut c: async_nats::jetstream::consumer::PullConsumer = js
                    .get_consumer_from_stream(name, protocol::subjects::HUB_STREAM)
                    .await
                    .ok()?;
                let info = c.info().await.ok()?;
                (info.num_pending == 0
                    && info.num_ack_pending == 0
                    && info.delivered.stream_sequence > 0)
                    .then_some(())
            }
        })
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
        if let Some((g, _)) = &mut self.garage {
            g.proc.kill().await;
        }
        drop_database(&self.db_name).await;
    }
}

/// A server certificate `<stem>.pem` from the dev CA in `ca_dir` for `host`
/// (besides localhost and 127.0.0.1): the paths of the chain and the key.
async fn dev_cert(
    ca_dir: &std::path::Path,
    stem: &str,
    host: &str,
) -> anyhow::Result<(String, String)> {
    crate::nats::run(
        &bin_dir().join("relay"),
        &[
            "gen-dev-ca".to_owned(),
            ca_dir.display().to_string(),
            "--cert".to_owned(),
            stem.to_owned(),
            "--name".to_owned(),
            host.to_owned(),
        ],
    )
    .await?;
    Ok((
        ca_dir.join(format!("{stem}.pem")).display().to_string(),
        ca_dir.join(format!("{stem}.key")).display().to_string(),
    ))
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
