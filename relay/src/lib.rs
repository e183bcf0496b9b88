//! The classroom MoQ relay. See `ARCHITECTURE.md` for the map.
#![warn(unreachable_pub)]

pub mod auth;
pub mod dev_ca;
pub mod routing;
pub mod tls;
