//! The media mesh's client side: publish media tracks to a MoQ relay and
//! subscribe to them, with moq-transport 0.17 (draft-18, raw QUIC
//! `moqt://`), and fetch the relay token from core. The edge's SFU feeds
//! [`TrackPublisher::push`] and forwards what [`TrackSubscriber::next`]
//! yields; tests use the same client to watch the relay as a far edge would.
//!
//! * Track names are `<tenant>/<session>/<participant>/<kind>`: the first
//!   three parts are the MoQ namespace (published once per participant), the
//!   kind (`audio`, `video`, `program`) is the track name within it.
//! * One MoQ group per keyframe (video, program) or per second of audio,
//!   one object per RTP packet; the object payload is [`wire`]'s header plus
//!   the RTP payload.
//! * Errors say what to do next ([`MeshError::retryable`]): reconnect,
//!   fetch a fresh token, or resubscribe later.
//!
//! * [`connection`] is the one dialer of the mesh: the relay pulls from its
//!   upstream, and the tests and benchmarks connect, with it too.
//!
//! A library, not a service: it depends on `protocol` only.

mod client;
pub mod codes;
pub mod connection;
mod publisher;
mod reorder;
mod subscriber;
mod token;
pub mod wire;

pub use client::MeshClient;
pub use connection::{CloseReason, Connection, DialError, Dialer};
pub use publisher::TrackPublisher;
pub use subscriber::{ReceivedPacket, TrackSubscriber};
pub use token::fetch_token;
pub use wire::MediaPacket;

/// What went wrong, in terms of what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeshError {
    /// Bad URL, CA or track name: retrying will not help.
    #[error("mesh configuration: {0}")]
    Config(String),
    /// The relay refused our token: get a fresh one from core, reconnect.
    #[error("the relay refused our token")]
    Unauthorized,
    /// Nobody publishes the track (yet): subscribe again later.
    #[error("the relay has no such track")]
    NotFound,
    /// The relay, or the track's origin behind it, cannot be reached now.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The connection to the relay is gone: reconnect (then resubscribe and
    /// publish again).
    #[error("disconnected from the relay: {0}")]
    Disconnected(String),
    /// The publisher ended the track or went away: subscribe again.
    #[error("the track ended")]
    TrackEnded,
}

impl MeshError {
    /// Whether trying again (after a backoff, with a new connection or a
    /// fresh token as the variant says) can succeed.
    pub fn retryable(&self) -> bool {
        match self {
            MeshError::Config(_) => false,
            MeshError::Unauthorized
            | MeshError::NotFound
            | MeshError::Unavailable(_)
            | MeshError::Disconnected(_)
            | MeshError::TrackEnded => true,
        }
    }
}

/// Splits `<tenant>/<session>/<participant>/<kind>` into (namespace, kind).
fn split_track_name(name: &str) -> Result<(&str, &str), MeshError> {
    let (namespace, kind) = name
        .rsplit_once('/')
        .ok_or_else(|| MeshError::Config(format!("track name {name:?} has no namespace")))?;
    if namespace.is_empty() || kind.is_empty() || namespace.split('/').any(str::is_empty) {
        return Err(MeshError::Config(format!(
            "track name {name:?} has an empty part"
        )));
    }
    Ok((namespace, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_names_split_into_namespace_and_kind() {
        assert_eq!(split_track_name("t/s/p/video"), Ok(("t/s/p", "video")));
        assert!(split_track_name("video").is_err());
        assert!(split_track_name("t//p/video").is_err());
        assert!(split_track_name("t/s/p/").is_err());
    }
}
