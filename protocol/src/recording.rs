//! A session's recording as its events tell it: the segments stored (in
//! index order), the gaps, the alerts and whether it is finalized. Core
//! serves it; the edge writes its manifest from the same fold.

use serde::{Deserialize, Serialize};

use crate::event::{Envelope, EventBody};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub index: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub bytes: u64,
    pub sha256: String,
    pub object_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub from_ms: u64,
    pub to_ms: u64,
    pub reason: String,
}

/// A recording as its events tell it.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub armed: bool,
    pub finalized: Option<(u64, String)>,
    pub segments: Vec<Segment>,
    pub gaps: Vec<Gap>,
    pub alerts: Vec<String>,
}

impl Recording {
    pub fn from_events(events: &[Envelope]) -> Recording {
        let mut r = Recording::default();
        for ev in events {
            match &ev.body {
                EventBody::RecordingArmed { .. } => r.armed = true,
                EventBody::RecordingSegment {
                    index,
                    start_ms,
                    end_ms,
                    bytes,
                    sha256,
                    object_key,
                } => r.segments.push(Segment {
                    index: *index,
                    start_ms: *start_ms,
                    end_ms: *end_ms,
                    bytes: *bytes,
                    sha256: sha256.clone(),
                    object_key: object_key.clone(),
                }),
                EventBody::RecordingGap {
                    from_ms,
                    to_ms,
                    reason,
                } => r.gaps.push(Gap {
                    from_ms: *from_ms,
                    to_ms: *to_ms,
                    reason: reason.clone(),
                }),
                EventBody::RecordingAlert { reason } => r.alerts.push(reason.clone()),
                EventBody::RecordingFinalized {
                    duration_ms,
                    manifest_key,
                    ..
                } => r.finalized = Some((*duration_ms, manifest_key.clone())),
                _ => {}
            }
        }
        r.segments.sort_by_key(|s| s.index);
        r
    }

    pub fn status(&self) -> &'static str {
        match (self.armed, &self.finalized) {
            (_, Some(_)) => "finalized",
            (true, None) => "recording",
            (false, None) => "off",
        }
    }

    pub fn duration_ms(&self) -> u64 {
        match &self.finalized {
            Some((d, _)) => *d,
            None => self.segments.iter().map(|s| s.end_ms).max().unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, EVENT_SCHEMA_VERSION, Source};
    use crate::ids::{EdgeId, Seq};
    use chrono::DateTime;
    use uuid::Uuid;

    fn ev(seq: u64, body: EventBody) -> Envelope {
        Envelope {
            event_id: crate::ids::EventId::from_uuid(Uuid::from_u128(seq as u128)),
            tenant_id: crate::ids::TenantId::from_uuid(Uuid::from_u128(100)),
            session_id: crate::ids::SessionId::from_uuid(Uuid::from_u128(200)),
            seq: Seq(seq),
            occurred_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            actor: Actor::System,
            source: Source::Edge(EdgeId::new("edge-a").unwrap()),
            v: EVENT_SCHEMA_VERSION,
            body,
        }
    }

    fn seg(index: u32, start_ms: u64, end_ms: u64) -> EventBody {
        EventBody::RecordingSegment {
            index,
            start_ms,
            end_ms,
            bytes: 10,
            sha256: format!("h{index}"),
            object_key: format!("k{index}"),
        }
    }

    #[test]
    fn the_events_tell_the_recording() {
        let armed = EventBody::RecordingArmed {
            started_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            offset_ms: 0,
        };
        let mut events = vec![
            ev(1, armed),
            ev(2, seg(1, 6000, 12000)),
            ev(3, seg(0, 0, 6000)),
        ];
        let r = Recording::from_events(&events);
        assert_eq!(r.status(), "recording");
        assert_eq!(
            r.segments.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![0, 1],
            "in index order"
        );
        assert_eq!(r.duration_ms(), 12000);
        events.push(ev(
            4,
            EventBody::RecordingGap {
                from_ms: 12000,
                to_ms: 15000,
                reason: "edge_restart".into(),
            },
        ));
        events.push(ev(
            5,
            EventBody::RecordingAlert {
                reason: "disk_full: x".into(),
            },
        ));
        events.push(ev(
            6,
            EventBody::RecordingFinalized {
                duration_ms: 21000,
                segments: 3,
                manifest_key: "m".into(),
            },
        ));
        let r = Recording::from_events(&events);
        assert_eq!(r.status(), "finalized");
        assert_eq!(r.duration_ms(), 21000, "the finalized duration wins");
        assert_eq!(r.gaps.len(), 1);
        assert_eq!(r.alerts, vec!["disk_full: x".to_owned()]);
        assert_eq!(Recording::from_events(&[]).status(), "off");
    }
}
