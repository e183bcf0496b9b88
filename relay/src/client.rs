//! A MoQ client connection to a relay: what this relay uses to pull from its
//! `--upstream`, and what the tests and the benchmark use to publish and
//! subscribe. The dialer is the mesh's one copy (`mesh_client::connection`);
//! this module names it for the relay's callers, with the close codes.

pub use mesh_client::codes::{
    CLOSE_PROTOCOL_VIOLATION, CLOSE_SHUTDOWN, CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED,
};
pub use mesh_client::connection::{CloseReason, Connection, DialError, Dialer};
