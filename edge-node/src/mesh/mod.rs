//! The edge's side of the media mesh: the standing relay connection
//! (`uplink.rs`) and the bridge between it and the SFU (`bridge.rs`). The
//! MoQ client itself (publish, subscribe, the object wire format, relay
//! tokens) is the `mesh-client` crate, re-exported here.
//!
//! The relay end is `relay/` (its `client.rs` dials the same way for relay
//! chaining).

pub mod bridge;
mod uplink;

pub use bridge::RemoteFeeds;
pub use mesh_client::{
    MediaPacket, MeshClient, MeshError, ReceivedPacket, TrackPublisher, TrackSubscriber,
    fetch_token, wire,
};
pub use uplink::Uplink;
