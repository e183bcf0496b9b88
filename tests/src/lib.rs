//! The end-to-end harness: starts the real binaries (core, edge-node), real
//! NATS servers (a hub and leaf nodes with their own JetStream domains) and a
//! fresh Postgres database per stack, on free loopback ports, and talks to
//! them only over the wire. Every process it starts dies with the stack.
#![warn(unreachable_pub)]

pub mod api;
pub mod benchutil;
pub mod browser;
pub mod feed;
pub mod garage;
pub mod lrs;
pub mod media_check;
pub mod nats;
pub mod netns;
pub mod pdf;
pub mod process;
pub mod proxy;
pub mod rtc_client;
pub mod rtmp;
pub mod stack;
pub mod wait;

pub use api::{Api, Session};
pub use stack::{Stack, StackOptions};
pub use wait::wait_until;

use std::path::PathBuf;

/// The workspace root (where `.tools/` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory holding the built binaries: next to the running test.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CLASSROOM_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    // tests run from target/<profile>/deps; binaries sit in target/<profile>
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A free TCP port on loopback (bound, read back, released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// A loopback port free for both UDP and TCP (the relay takes QUIC and its
/// health check on the same number).
pub fn free_udp_tcp_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp port 0");
        let port = udp.local_addr().expect("local addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A free UDP port on loopback.
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp port 0");
    s.local_addr().expect("local addr").port()
}

/// Postgres for tests: `TEST_DATABASE_URL` or the machine's local server.
pub fn pg_base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Tests that run browsers or media pipelines hold this while they run: on
/// two cores they go one at a time (within a test binary), so none of them
/// passes or fails by how loaded the machine happened to be.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}
