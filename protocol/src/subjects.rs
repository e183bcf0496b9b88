//! NATS subject and stream names, and MoQ track names. One place, so the
//! edge, core and tests cannot drift apart.
//!
//! Events: an edge writes `cls.ev.<edge>.<tenant>.<session>` into its own
//! stream `EV_<edge>` (in its own JetStream domain, named after the edge);
//! core's hub stream `CLASS_EVENTS` sources every edge stream across the leaf
//! link and also holds core's own `cls.ev.core.<tenant>.<session>` events
//! (written after a class ended).

use crate::event::MediaKind;
use crate::ids::{EdgeId, ParticipantId, SessionId, TenantId};

/// Core's stream in the hub's `core` domain.
pub const HUB_STREAM: &str = "CLASS_EVENTS";
/// The JetStream domain of the hub.
pub const HUB_DOMAIN: &str = "core";
/// Durable consumer that writes the hub stream into Postgres.
pub const INGEST_CONSUMER: &str = "core-ingest";
/// Durable consumer that turns `session.ended` / `recording.finalized` on
/// the hub stream into artifact jobs.
pub const ARTIFACTS_CONSUMER: &str = "core-artifacts";
/// Durable consumer that joins each `recording.finalized` recording into one
/// MP4 in object storage (off the request path).
pub const RECORDING_JOIN_CONSUMER: &str = "core-recording-join";
/// Durable consumer that folds every class's events into analytics.
pub const ANALYTICS_CONSUMER: &str = "core-analytics";
/// Edges publish their health here; core subscribes to all of them.
pub const EDGE_HEALTH_ALL: &str = "cls.edge.*.health";

pub fn edge_event_subject(edge: &EdgeId, tenant: TenantId, session: SessionId) -> String {
    format!("cls.ev.{edge}.{tenant}.{session}")
}

pub fn core_event_subject(tenant: TenantId, session: SessionId) -> String {
    format!("cls.ev.core.{tenant}.{session}")
}

/// Every subject the edge's stream captures.
pub fn edge_stream_subjects(edge: &EdgeId) -> String {
    format!("cls.ev.{edge}.>")
}

pub fn core_stream_subjects() -> &'static str {
    "cls.ev.core.>"
}

pub fn edge_stream_name(edge: &EdgeId) -> String {
    format!("EV_{edge}")
}

/// The JetStream domain an edge's leaf node runs: the edge's own name.
pub fn edge_domain(edge: &EdgeId) -> String {
    edge.to_string()
}

/// The API prefix that reaches a domain's JetStream from another domain.
pub fn js_api_prefix(domain: &str) -> String {
    format!("$JS.{domain}.API")
}

/// Core asks an edge to start, command or end a session here (request/reply).
pub fn edge_control_subject(edge: &EdgeId) -> String {
    format!("cls.edge.{edge}.control")
}

/// Where an edge asks core for a relay token (request/reply over its leaf
/// link). The last token names the asking edge; the hub lets each edge's
/// identity publish only its own, so core reads the identity off the subject.
pub fn relay_token_subject(edge: &EdgeId) -> String {
    format!("cls.core.relay-token.{edge}")
}

/// Core listens for every edge's relay token requests here.
pub const RELAY_TOKEN_ALL: &str = "cls.core.relay-token.*";

/// A far edge asks the class's home edge for the class's state here; the
/// last token names the asking edge (only it may publish there).
pub fn edge_state_subject(home: &EdgeId, asking: &EdgeId) -> String {
    format!("cls.edge.{home}.state.{asking}")
}

/// Every state request addressed to `home`.
pub fn edge_state_requests(home: &EdgeId) -> String {
    format!("cls.edge.{home}.state.*")
}

/// Core's reply inboxes: edges may answer into them, never read them.
pub const CORE_INBOX_PREFIX: &str = "_INBOX_core";

/// An edge's reply inboxes: only that edge may subscribe to them.
pub fn edge_inbox_prefix(edge: &EdgeId) -> String {
    format!("_INBOX_e.{edge}")
}

/// Where the hub stream's source consumer on an edge's stream delivers: a
/// per-edge prefix, so one edge cannot feed messages into another's source.
pub fn edge_source_delivery_prefix(edge: &EdgeId) -> String {
    format!("cls.src.{edge}")
}

/// The subjects an edge's leaf connection may publish into the hub and
/// subscribe to from it. The hub applies them to the edge's identity;
/// everything else is refused at the hub.
pub struct LeafPermissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

pub fn edge_leaf_permissions(edge: &EdgeId) -> LeafPermissions {
    LeafPermissions {
        publish: vec![
            // its heartbeats and relay token requests
            edge_health_subject(edge),
            relay_token_subject(edge),
            // its stream's messages into the hub's source, and the replies
            // of its JetStream API to the hub's source requests
            format!("{}.>", edge_source_delivery_prefix(edge)),
            "$JSC.R.>".to_owned(),
            // answers to core's control requests and to other edges'
            // state requests
            format!("{CORE_INBOX_PREFIX}.>"),
            "_INBOX_e.*.>".to_owned(),
            // state requests it asks other edges, as itself
            format!("cls.edge.*.state.{edge}"),
            // keyframe requests for relayed tracks it serves
            "cls.media.*.keyframe".to_owned(),
        ],
        subscribe: vec![
            edge_control_subject(edge),
            edge_state_requests(edge),
            // the hub's JetStream API calls into this edge's domain, and
            // its flow control for the source consumer
            format!("{}.>", js_api_prefix(&edge_domain(edge))),
            "$JS.FC.>".to_owned(),
            format!("{}.>", edge_inbox_prefix(edge)),
            "cls.media.*.keyframe".to_owned(),
        ],
    }
}

/// The MoQ track of one published source: camera → `video`, microphone →
/// `audio`, screen → `screen`, program → `program`.
pub fn moq_source_track_name(
    tenant: TenantId,
    session: SessionId,
    participant: ParticipantId,
    source: crate::event::TrackSource,
) -> String {
    use crate::event::TrackSource::*;
    let kind = match source {
        Camera => "video",
        Microphone => "audio",
        Screen => "screen",
        Program => "program",
    };
    format!("{tenant}/{session}/{participant}/{kind}")
}

/// Where far edges ask the home edge for a keyframe of a relayed track
/// (payload: the MoQ track name).
pub fn keyframe_request_subject(session: SessionId) -> String {
    format!("cls.media.{session}.keyframe")
}

/// The MoQ track of a session's composed program video (H.264 over RTP).
pub fn program_track_name(tenant: TenantId, session: SessionId) -> String {
    format!("{tenant}/{session}/program/video")
}

/// The MoQ track of a session's program audio (the mix, Opus over RTP).
pub fn program_audio_track_name(tenant: TenantId, session: SessionId) -> String {
    format!("{tenant}/{session}/program/audio")
}

pub fn edge_health_subject(edge: &EdgeId) -> String {
    format!("cls.edge.{edge}.health")
}

/// The MoQ track of one participant's media: `<tenant>/<session>/<participant>/<kind>`.
pub fn moq_track_name(
    tenant: TenantId,
    session: SessionId,
    participant: ParticipantId,
    kind: MediaKind,
) -> String {
    let kind = match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    };
    format!("{tenant}/{session}/{participant}/{kind}")
}

/// Splits an event subject back into (source, tenant, session).
pub fn parse_event_subject(subject: &str) -> Option<(&str, &str, &str)> {
    let rest = subject.strip_prefix("cls.ev.")?;
    let mut parts = rest.split('.');
    let (src, tenant, session) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some((src, tenant, session))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn event_subjects_roundtrip() {
        let edge = EdgeId::new("edge-a").unwrap();
        let t = TenantId::from_uuid(Uuid::from_u128(1));
        let s = SessionId::from_uuid(Uuid::from_u128(2));
        let subj = edge_event_subject(&edge, t, s);
        assert_eq!(
            parse_event_subject(&subj),
            Some(("edge-a", t.to_string().as_str(), s.to_string().as_str()))
        );
        assert!(parse_event_subject("cls.ev.a.b").is_none());
        assert!(parse_event_subject("other.ev.a.b.c").is_none());
        assert_eq!(js_api_prefix("edge-a"), "$JS.edge-a.API");
    }
}
