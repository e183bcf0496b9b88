//! The core's one configuration, parsed once in `main`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "core",
    about = "Classroom core: identity, orchestration, events, artifacts"
)]
pub struct Config {
    /// HTTP API and console address.
    #[arg(long, env = "CORE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The URL clients and edges use to reach core.
    #[arg(long, env = "CORE_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,

    /// The PostgreSQL URL (it may hold a password: `--help` never shows
    /// the environment's value).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/classroom"
    )]
    pub database_url: String,

    /// Create the database if it does not exist yet.
    #[arg(long, env = "CORE_CREATE_DATABASE", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_database: bool,

    /// The NATS hub (JetStream domain `core`).
    #[arg(long, env = "CORE_NATS_URL", default_value = "nats://127.0.0.1:4230")]
    pub nats_url: String,

    /// Core's nkey seed on the hub (written by `core nats-auth`). Without
    /// it core connects unauthenticated, which the dev stack's hub refuses.
    #[arg(long, env = "CORE_NATS_SEED_FILE")]
    pub nats_seed_file: Option<PathBuf>,

    /// Where core keeps its signing key and other local state.
    #[arg(long, env = "CORE_DATA_DIR", default_value = ".dev/core")]
    pub data_dir: PathBuf,

    /// An edge is unhealthy when its last heartbeat is older than this.
    #[arg(long, env = "CORE_EDGE_STALE_MS", default_value_t = 5000)]
    pub edge_stale_ms: u64,

    /// How long core waits for an edge to answer a command.
    #[arg(long, env = "CORE_EDGE_TIMEOUT_MS", default_value_t = 5000)]
    pub edge_timeout_ms: u64,

    /// Object storage (a local directory) where edges upload recordings;
    /// default `<data-dir>/objects`. `--object-store-url` takes precedence.
    #[arg(long, env = "OBJECT_STORE_DIR")]
    pub object_store_dir: Option<PathBuf>,

    /// Object storage by URL: `file:///dir` or `s3://bucket[/prefix]` (the
    /// same bucket the edges record into). For S3 the endpoint and the
    /// credentials come from the environment only (`AWS_ENDPOINT`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint, `OBJECT_STORE_CA`
    /// for a private CA).
    #[arg(long, env = "OBJECT_STORE_URL")]
    pub object_store_url: Option<String>,

    /// Serve HTTPS with this certificate chain (PEM; with `--tls-key`).
    #[arg(long, env = "TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, env = "TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// The key-encryption key that wraps each person's data key (a local
    /// key file, made on first start; back it up apart from the database).
    /// Default `<data-dir>/subject-kek.key`.
    #[arg(long, env = "CORE_KEK_FILE")]
    pub kek_file: Option<PathBuf>,

    /// How often the retention sweep removes what every tenant's policy no
    /// longer keeps (0: never; admins can still sweep now from the console).
    #[arg(long, env = "CORE_RETENTION_INTERVAL_SECS", default_value_t = 3600)]
    pub retention_interval_secs: u64,

    /// Browser origins allowed by CORS (comma separated); empty allows any.
    #[arg(long, env = "CORE_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,

    /// Run the artifact pipeline (transcripts, chapters, highlights, search)
    /// after classes end.
    #[arg(long, env = "CORE_ARTIFACTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub artifacts: bool,

    /// The Whisper model (ggml) for recordings' transcripts; default
    /// `ggml-base.bin` where `deploy/asr-models.sh` puts it.
    #[arg(long, env = "CORE_ASR_MODEL", default_value_os_t = asr::model_path("ggml-base.bin"))]
    pub asr_model: PathBuf,

    /// CPU threads for one transcription (ggml spins at its barriers, so on
    /// a busy two-core box one thread is faster than two).
    #[arg(long, env = "CORE_ASR_THREADS", default_value_t = 1)]
    pub asr_threads: u32,

    /// Longest wait between retries of a failed artifact stage.
    #[arg(long, env = "CORE_ARTIFACT_RETRY_MAX_MS", default_value_t = 300_000)]
    pub artifact_retry_max_ms: u64,

    /// The built web app (`npm run build` in `web/`): `index.html` is served
    /// at `/`, its `assets/` at `/assets/`.
    #[arg(long, env = "CORE_WEB_DIR", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/dist"))]
    pub web_dir: PathBuf,

    #[command(subcommand)]
    pub command: Option<CoreCommand>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum CoreCommand {
    /// Serve the API (the default).
    Serve,
    /// Apply migrations and exit.
    Migrate,
    /// Seed the demo tenants and accounts (dev stack only).
    SeedDemo {
        #[arg(
            long,
            env = "DEMO_PASSWORD",
            hide_env_values = true,
            hide_default_value = true,
            default_value = "classroom-demo"
        )]
        password: String,
        /// Number of demo students.
        #[arg(long, default_value_t = 30)]
        students: u32,
    },
    /// Write the NATS identities (nkeys) and the hub's and leaves'
    /// authorization config into DIR; keeps existing seeds. No database.
    NatsAuth {
        #[arg(long)]
        dir: PathBuf,
        /// An edge to make an identity for (repeatable); edges already in
        /// DIR are kept.
        #[arg(long = "edge")]
        edges: Vec<String>,
    },
    /// Say which tenant an edge belongs to (a campus box), or that it is
    /// shared by every tenant.
    EdgeOwner {
        edge: String,
        /// The owning tenant's slug.
        #[arg(long, conflicts_with = "shared")]
        tenant: Option<String>,
        #[arg(long)]
        shared: bool,
    },
    /// Rotates core's signing key: the current key keeps verifying (and
    /// stays in the JWKS) until the next rotation, a new key signs. Restart
    /// core to sign with it; edges and relays fetch the JWKS again when they
    /// meet its kid.
    RotateKeys,
    /// The audit log's hash chains.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Analytics tables.
    Analytics {
        #[command(subcommand)]
        action: AnalyticsCommand,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AnalyticsCommand {
    /// Folds every kept class log again from its first event and rewrites
    /// the analytics tables (the same rows as the consumer wrote).
    Rebuild {
        /// Only this tenant (its slug).
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Walks every tenant's chain (or one tenant's) and reports any row
    /// edited or removed; exits with status 1 when a chain is broken.
    Verify {
        /// Only this tenant (its slug).
        #[arg(long)]
        tenant: Option<String>,
    },
}

impl Config {
    /// The object storage directory.
    pub fn kek_path(&self) -> PathBuf {
        self.kek_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("subject-kek.key"))
    }

    /// Where objects live: `--object-store-url`, else the directory.
    pub fn objects(&self) -> Result<hosting::objects::Location, hosting::objects::StoreError> {
        match &self.object_store_url {
            Some(url) => hosting::objects::Location::parse(url),
            None => Ok(hosting::objects::Location::Dir(self.objects_dir())),
        }
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.object_store_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("objects"))
    }
}
