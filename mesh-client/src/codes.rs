//! The numbers both ends of the mesh must agree on: the relay (`relay/`)
//! and its clients (this crate, the edge). One copy.

/// The AUTHORIZATION TOKEN type (draft-18 §10.3.1.4) our JWT travels under
/// in SETUP. 0 is the value the registry reserves for a type agreed out of
/// band, which is what this is: both ends are ours.
pub const SETUP_TOKEN_TYPE: u64 = 0;

/// Session close codes the relay uses.
/// A relay shutting down (NO_ERROR: reconnect).
pub const CLOSE_SHUTDOWN: u32 = 0x0;
/// A refused token (draft-18's UNAUTHORIZED session termination code).
pub const CLOSE_UNAUTHORIZED: u32 = 0x2;
/// A peer whose SETUP the relay could not accept.
pub const CLOSE_PROTOCOL_VIOLATION: u32 = 0x3;
/// The peer's relay token expired; it may come back with a fresh one.
pub const CLOSE_TOKEN_EXPIRED: u32 = 0x10;

/// REQUEST_ERROR's UNAUTHORIZED: the token does not allow this
/// PUBLISH_NAMESPACE or SUBSCRIBE.
pub const REQUEST_UNAUTHORIZED: u64 = 0x1;

/// Namespaces that never leave a relay: a client's cheap round trip to
/// learn whether the relay accepted its token.
pub const PROBE_NAMESPACE: &str = ".probe";

/// The only ALPN the mesh speaks: raw QUIC MoQT draft-18 (what `moqt://`
/// URLs use).
pub const ALPN: &[u8] = moq_transport::setup::DraftVersion::Draft18.alpn_bytes();
