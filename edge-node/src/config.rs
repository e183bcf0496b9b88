//! The edge's one configuration, parsed once in `main`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use protocol::EdgeId;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "edge-node",
    about = "Classroom edge: live session runtime, SFU, recorder"
)]
pub struct Config {
    /// This edge's name; also its JetStream domain.
    #[arg(long, env = "EDGE_ID", default_value = "edge-a")]
    pub edge_id: EdgeId,

    /// HTTP address for signaling, the live feed and campus clients.
    #[arg(long, env = "EDGE_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// The URL clients use to reach this edge.
    #[arg(long, env = "EDGE_PUBLIC_URL", default_value = "http://127.0.0.1:8081")]
    pub public_url: String,

    /// This edge's NATS leaf node (with its own JetStream domain).
    #[arg(long, env = "EDGE_NATS_URL", default_value = "nats://127.0.0.1:4231")]
    pub nats_url: String,

    /// This edge's nkey seed on its leaf node (`<edge>.local.seed`, written
    /// by `core nats-auth`).
    #[arg(long, env = "EDGE_NATS_SEED_FILE")]
    pub nats_seed_file: Option<std::path::PathBuf>,

    /// Core, for the JWKS that verifies join tokens.
    #[arg(long, env = "EDGE_CORE_URL", default_value = "http://127.0.0.1:8080")]
    pub core_url: String,

    #[arg(long, env = "EDGE_REGION")]
    pub region: Option<String>,

    /// Live sessions this edge hosts at once.
    #[arg(long, env = "EDGE_CAPACITY", default_value_t = 50)]
    pub capacity: u32,

    /// Local state: the JWKS cache (so joins verify while core is away).
    #[arg(long, env = "EDGE_DATA_DIR", default_value = ".dev/edge-a")]
    pub data_dir: PathBuf,

    #[arg(long, env = "EDGE_HEARTBEAT_MS", default_value_t = 1000)]
    pub heartbeat_ms: u64,

    /// The SFU's UDP socket (all peers multiplexed on it).
    #[arg(long, env = "EDGE_MEDIA_UDP", default_value = "127.0.0.1:10001")]
    pub media_udp: std::net::SocketAddr,

    /// The media address advertised to peers; defaults to `media_udp`.
    #[arg(long, env = "EDGE_MEDIA_PUBLIC")]
    pub media_public: Option<std::net::SocketAddr>,

    /// A participant whose media dropped is `participant.left` after this.
    #[arg(long, env = "EDGE_MEDIA_GRACE_MS", default_value_t = 10_000)]
    pub media_grace_ms: u64,

    /// A media peer silent this long is considered gone.
    #[arg(long, env = "EDGE_MEDIA_IDLE_MS", default_value_t = 6_000)]
    pub media_idle_ms: u64,

    /// `media.quality` samples per peer at most this often.
    #[arg(long, env = "EDGE_MEDIA_QUALITY_MS", default_value_t = 10_000)]
    pub media_quality_ms: u64,

    /// Compose and record every class (the composer needs GStreamer).
    #[arg(long, env = "EDGE_RECORDING", default_value_t = true, action = clap::ArgAction::Set)]
    pub recording: bool,

    /// Where recording segments wait for upload; default `<data-dir>/spool`.
    #[arg(long, env = "EDGE_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Below this much free space the recorder stops (the class goes on).
    #[arg(long, env = "EDGE_SPOOL_MIN_FREE_MB", default_value_t = 64)]
    pub spool_min_free_mb: u64,

    /// Caption recorded classes live (whisper.cpp on the recorder's mix).
    /// Without the model the edge warns once and classes run uncaptioned.
    #[arg(long, env = "EDGE_CAPTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub captions: bool,

    /// The caption model (whisper.cpp ggml, tiny.en); loaded on the first
    /// captioned class.
    #[arg(long, env = "EDGE_CAPTIONS_MODEL", default_value_os_t = asr::model_path("ggml-tiny.en.bin"))]
    pub captions_model: PathBuf,

    /// Object storage (a local directory); default `<data-dir>/objects`.
    /// Core must read the same store to serve recordings.
    #[arg(long, env = "OBJECT_STORE_DIR")]
    pub object_store_dir: Option<PathBuf>,

    /// Object storage by URL, taking precedence over the directory:
    /// `s3://bucket[/prefix]` (core's bucket: the edge uploads recordings
    /// there itself, no shared filesystem) or `file:///dir`. Endpoint and
    /// credentials from the environment only (`AWS_ENDPOINT`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ALLOW_HTTP`, `OBJECT_STORE_CA`).
    #[arg(long, env = "OBJECT_STORE_URL")]
    pub object_store_url: Option<String>,

    /// CA certificate(s) (PEM) core's HTTPS certificate chains to, when
    /// core's is not publicly trusted (the JWKS and deck pages come over it).
    #[arg(long, env = "EDGE_CORE_CA")]
    pub core_ca: Option<PathBuf>,

    /// Serve HTTPS with this certificate chain (PEM; with `--tls-key`).
    #[arg(long, env = "TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of `--tls-cert`.
    #[arg(long, env = "TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// The MoQ relay of the media mesh (`moqt://host:port`); unset, the edge
    /// serves only its own students and publishes no program feed.
    #[arg(long, env = "RELAY_URL")]
    pub relay_url: Option<String>,

    /// CA certificate(s) (PEM) the relay's certificate chains to.
    #[arg(long, env = "RELAY_CA", requires = "relay_url")]
    pub relay_ca: Option<PathBuf>,

    /// Public viewers one class may have on this edge (past it, 503 with
    /// Retry-After: the edge sheds them before it degrades the class).
    #[arg(long, env = "EDGE_MAX_PUBLIC_VIEWERS", default_value_t = 1000)]
    pub max_public_viewers: u32,

    /// Per-participant rate limits on campus commands (off only for load tests).
    #[arg(long, env = "EDGE_RATE_LIMITS", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limits: bool,

    /// Browser origins allowed by CORS (comma separated); empty allows any.
    #[arg(long, env = "EDGE_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
}
