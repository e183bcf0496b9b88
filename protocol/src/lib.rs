//! The classroom protocol: what core, edges and relays say to each other.
//!
//! Pure by design: no sockets, no tokio, no clocks, no randomness. Time and
//! fresh ids come in as arguments, so everything here is deterministic and
//! testable without a network.
#![warn(unreachable_pub)]

pub mod api;
pub mod claims;
pub mod command;
pub mod control;
pub mod event;
pub mod ids;
pub mod metrics;
pub mod recording;
pub mod rejection;
pub mod roles;
pub mod state;
pub mod subjects;
pub mod view;

pub use command::{Command, RejectKind, Rejection, decide};
pub use event::{Actor, EVENT_SCHEMA_VERSION, Envelope, EventBody, Source};
pub use ids::*;
pub use roles::{Permission, Role};
pub use state::{Applied, FoldError, SessionState, fold};
