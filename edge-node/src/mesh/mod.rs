//! The edge's side of the media mesh: the standing relay connection
//! (`uplink.rs`) and the bridge between it and the SFU (`bridge.rs`). The
//! MoQ client itself (publish, subscribe, the object wire format, relay
//! tokens) is the `mesh-client` crate, re-exported here.
//!
//! The relay end is `relay/` (its `client.rs` dials the same way for relay
//! chaining).

pub(crate) mod bridge;
mod uplink;

pub(crate) use bridge::RemoteFeeds;
pub(crate) use mesh_client::{MediaPacket, MeshClient, MeshError, TrackPublisher, fetch_token};
pub(crate) use uplink::Uplink;
