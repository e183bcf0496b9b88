//! The relay's command line. Parsed once in `main`; nothing else reads the
//! environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use url::Url;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "relay",
    about = "Classroom MoQ relay (moq-transport draft-18 over QUIC)",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Creates a development CA and a relay certificate signed by it in DIR
    /// (ca.pem, ca.key, relay.pem, relay.key). Existing files are kept.
    GenDevCa {
        dir: PathBuf,
        /// Extra DNS names or IPs for the relay certificate, besides
        /// localhost, 127.0.0.1 and ::1.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Which server certificate to issue from the CA: `relay` (the
        /// default) or another server's, e.g. `nats-hub` for the NATS hub's
        /// leaf-node TLS; written as `<cert>.pem`/`<cert>.key`.
        #[arg(long, default_value = "relay")]
        cert: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// UDP address for MoQ over QUIC; its TCP twin (same port) serves
    /// GET /healthz. Port 0 picks a free port (printed as `LISTENING <addr>`).
    #[arg(long, env = "RELAY_LISTEN", default_value = "127.0.0.1:4443")]
    pub listen: SocketAddr,

    /// PEM certificate chain for TLS. Default: the dev CA's relay.pem when
    /// --dev-ca-dir is set, else a throwaway self-signed certificate.
    #[arg(long, env = "RELAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key matching --tls-cert.
    #[arg(long, env = "RELAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Core's base URL; the relay verifies tokens with `{core}/.well-known/jwks.json`.
    #[arg(long, env = "RELAY_CORE_URL", default_value = "http://127.0.0.1:8080")]
    pub core_url: String,

    /// CA certificate(s) (PEM) core's HTTPS certificate chains to, when it
    /// is not publicly trusted.
    #[arg(long, env = "RELAY_CORE_CA")]
    pub core_ca: Option<PathBuf>,

    /// A parent relay to pull tracks from when nobody here publishes them
    /// (`moqt://host:port`).
    #[arg(long, env = "RELAY_UPSTREAM")]
    pub upstream: Option<Url>,

    /// The relay token this relay presents to --upstream.
    #[arg(long, env = "RELAY_UPSTREAM_TOKEN", hide_env_values = true)]
    pub upstream_token: Option<String>,

    /// A file holding the upstream token, re-read at every (re)dial.
    #[arg(
        long,
        env = "RELAY_UPSTREAM_TOKEN_FILE",
        conflicts_with = "upstream_token"
    )]
    pub upstream_token_file: Option<PathBuf>,

    /// CA certificate(s) (PEM) trusted for --upstream. Default: the dev CA's
    /// ca.pem when --dev-ca-dir is set.
    #[arg(long, env = "RELAY_UPSTREAM_CA")]
    pub upstream_ca: Vec<PathBuf>,

    /// Development CA directory: created if missing (like `gen-dev-ca`); its
    /// relay.pem/relay.key serve TLS and its ca.pem is trusted upstream.
    #[arg(long, env = "RELAY_DEV_CA_DIR")]
    pub dev_ca_dir: Option<PathBuf>,

    /// Seconds a track nobody watches keeps its upstream pull.
    #[arg(long, env = "RELAY_LINGER_SECS", default_value_t = 5)]
    pub linger_secs: u64,
}
