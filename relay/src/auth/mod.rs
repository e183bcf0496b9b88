//! Who may talk to the relay: edges (and other relays) present a JWT that
//! core signed with its Ed25519 key (`iss` "classroom-core", `aud` "relay",
//! `sub` the edge id). The relay verifies it against core's JWKS, which it
//! fetches and caches ([`Jwks`]). A peer without a valid token is closed
//! right after SETUP, before its session is run, so it can neither publish
//! nor subscribe.

mod jwks;
mod token;

pub use jwks::{Jwks, JwksError};
pub use token::{
    AuthError, KeySet, RELAY_AUDIENCE, RelayClaims, SETUP_TOKEN_TYPE, token_from_path, verify,
};
