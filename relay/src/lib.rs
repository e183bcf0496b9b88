//! The classroom MoQ relay: edges publish each track once, other edges and
//! core subscribe; relays chain by pulling from an `--upstream`.
//!
//! * [`routing`]: the sans-IO core (track table, newest-group cache,
//!   fan-out), tested with plain data.
//! * `driver`, `source`, `server`, `upstream`: the tokio/quinn shell around it.
//! * [`auth`]: relay tokens (EdDSA JWTs from core, verified with its JWKS).
//! * [`client`]: a MoQ client connection to a relay (upstream link, tests,
//!   benchmark).
#![warn(unreachable_pub)]

pub mod auth;
pub mod client;
pub mod config;
pub mod dev_ca;
mod driver;
mod health;
pub mod routing;
mod server;
mod source;
pub mod testkit;
pub mod tls;
mod upstream;

pub use config::{Cli, Command, Config};
pub use server::{Relay, RelayError};
pub use upstream::UpstreamToken;
