//! Where a person appears in a class's recording, for their export: the
//! stretches of media time when a camera, microphone or screen of theirs
//! was published while they consented to be recorded (a participant who
//! declined is kept out of the recording by the recorder, so they appear
//! nowhere then). The stretches are cut out of the class's one-file MP4.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use protocol::{Envelope, EventBody, ParticipantId, TrackId};

use crate::artifacts::derive::Clock;

/// Stretches closer than this are one clip.
const JOIN_MS: u64 = 1_000;
/// Shorter stretches are dropped (a track that came and went at once).
const MIN_MS: u64 = 500;

/// A stretch of a recording, in media time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stretch {
    pub from_ms: u64,
    pub to_ms: u64,
}

/// The stretches of the recording in which any of `seats` appears, in
/// order, within `0..duration_ms`.
pub(crate) fn appearances(
    events: &[Envelope],
    seats: &HashSet<ParticipantId>,
    duration_ms: u64,
) -> Vec<Stretch> {
    let clock = Clock::from_events(events);
    let mut tracks: HashMap<TrackId, ParticipantId> = HashMap::new();
    let mut declined: HashSet<ParticipantId> = HashSet::new();
    let mut open: Option<u64> = None;
    let mut out: Vec<Stretch> = Vec::new();
    for ev in events {
        match &ev.body {
            EventBody::TrackPublished {
                track_id,
                participant_id,
                ..
            } if seats.contains(participant_id) => {
                tracks.insert(*track_id, *participant_id);
            }
            EventBody::TrackUnpublished { track_id } => {
                tracks.remove(track_id);
            }
            EventBody::ParticipantLeft { participant_id, .. } => {
                tracks.retain(|_, p| p != participant_id);
            }
            EventBody::ConsentChanged {
                participant_id,
                recording,
            } if seats.contains(participant_id) => {
                if *recording {
                    declined.remove(participant_id);
                } else {
                    declined.insert(*participant_id);
                }
            }
            EventBody::SessionEnded { .. } => tracks.clear(),
            _ => continue,
        }
        let seen = tracks.values().any(|p| !declined.contains(p));
        let at = clock.media_ms(ev.occurred_at).min(duration_ms);
        match (open, seen) {
            (None, true) => open = Some(at),
            (Some(from), false) => {
                out.push(Stretch {
                    from_ms: from,
                    to_ms: at,
                });
                open = None;
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        out.push(Stretch {
            from_ms: from,
            to_ms: duration_ms,
        });
    }
    let mut merged: Vec<Stretch> = Vec::new();
    for s in out.into_iter().filter(|s| s.to_ms > s.from_ms) {
        match merged.last_mut() {
            Some(last) if s.from_ms <= last.to_ms + JOIN_MS => last.to_ms = last.to_ms.max(s.to_ms),
            _ => merged.push(s),
        }
    }
    merged.retain(|s| s.to_ms - s.from_ms >= MIN_MS);
    merged
}

/// Cuts `stretch` out of `mp4` into `out` (a stream copy: the clip starts at
/// the keyframe at or before the stretch, at most a second early).
pub(crate) async fn cut(mp4: &Path, stretch: Stretch, out: &Path) -> anyhow::Result<()> {
    let from = format!("{:.3}", stretch.from_ms as f64 / 1000.0);
    let len = format!("{:.3}", (stretch.to_ms - stretch.from_ms) as f64 / 1000.0);
    let (mp4, out) = (mp4.display().to_string(), out.display().to_string());
    crate::recordings::ffmpeg(&[
        "-ss",
        &from,
        "-i",
        &mp4,
        "-t",
        &len,
        "-c",
        "copy",
        "-avoid_negative_ts",
        "make_zero",
        "-movflags",
        "+faststart",
        &out,
    ])
    .await
    .map_err(|e| anyhow::anyhow!("cutting a clip: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};
    use protocol::event::{EndReason, LeaveReason, MediaKind, TrackSource};
    use protocol::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap() + Duration::seconds(s)
    }

    fn ev(seq: u64, s: i64, body: EventBody) -> Envelope {
        Envelope {
            event_id: EventId::from_uuid(uuid::Uuid::now_v7()),
            tenant_id: TenantId::from_uuid(uuid::Uuid::nil()),
            session_id: SessionId::from_uuid(uuid::Uuid::nil()),
            seq: Seq(seq),
            occurred_at: at(s),
            actor: Actor::System,
            source: Source::Core,
            v: EVENT_SCHEMA_VERSION,
            body,
        }
    }

    fn published(track: TrackId, p: ParticipantId) -> EventBody {
        EventBody::TrackPublished {
            track_id: track,
            participant_id: p,
            kind: MediaKind::Video,
            source: TrackSource::Camera,
            codec: "VP8".into(),
            simulcast: vec![],
        }
    }

    #[test]
    fn a_person_appears_while_published_and_consenting() {
        let ana = ParticipantId::from_uuid(uuid::Uuid::now_v7());
        let ben = ParticipantId::from_uuid(uuid::Uuid::now_v7());
        let track = || TrackId::from_uuid(uuid::Uuid::now_v7());
        let (a_cam, b_cam, a_cam2, b_cam2) = (track(), track(), track(), track());
        let events = vec![
            ev(
                2,
                10,
                EventBody::RecordingArmed {
                    started_at: at(10),
                    offset_ms: 0,
                },
            ),
            ev(3, 12, published(a_cam, ana)),
            ev(4, 13, published(b_cam, ben)),
            // declined from 20 s to 30 s of wall time
            ev(
                5,
                30,
                EventBody::ConsentChanged {
                    participant_id: ana,
                    recording: false,
                },
            ),
            ev(
                6,
                40,
                EventBody::ConsentChanged {
                    participant_id: ana,
                    recording: true,
                },
            ),
            ev(7, 50, EventBody::TrackUnpublished { track_id: a_cam }),
            // a second camera later, gone with the person
            ev(8, 60, published(a_cam2, ana)),
            ev(
                9,
                70,
                EventBody::ParticipantLeft {
                    participant_id: ana,
                    reason: LeaveReason::Left,
                },
            ),
            // ben's camera is not ana's
            ev(10, 80, published(b_cam2, ben)),
            ev(
                11,
                90,
                EventBody::SessionEnded {
                    reason: EndReason::Ended,
                },
            ),
        ];
        let seats: HashSet<_> = [ana].into();
        let got = appearances(&events, &seats, 80_000);
        assert_eq!(
            got,
            vec![
                Stretch {
                    from_ms: 2_000,
                    to_ms: 20_000
                },
                Stretch {
                    from_ms: 30_000,
                    to_ms: 40_000
                },
                Stretch {
                    from_ms: 50_000,
                    to_ms: 60_000
                },
            ]
        );
        // someone who published nothing appears nowhere
        let nobody: HashSet<_> = [ParticipantId::from_uuid(uuid::Uuid::now_v7())].into();
        assert!(appearances(&events, &nobody, 80_000).is_empty());
        // still published at the end: up to the recording's end
        let open = &events[..3];
        assert_eq!(
            appearances(open, &seats, 9_000),
            vec![Stretch {
                from_ms: 2_000,
                to_ms: 9_000
            }]
        );
    }
}
