//! Publishing one track: packets in, MoQ groups and objects out.

use moq_transport::serve::{Subgroup, SubgroupWriter, SubgroupsWriter};
use tokio::sync::watch;

use crate::MeshError;
use crate::connection::CloseReason;
use crate::wire::{self, MediaPacket};

/// How a track is cut into groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupPolicy {
    /// A new group at every packet that starts a keyframe (video, program):
    /// a late subscriber starts decoding at the group's first object.
    Keyframes,
    /// A new group every this many RTP timestamp ticks (audio: one second).
    Every(u32),
}

/// Audio tracks: a group per second at Opus' 48 kHz RTP clock.
const AUDIO_GROUP_TICKS: u32 = 48_000;

/// A group is cut after this many objects even without a keyframe, so a
/// sender that never sends one cannot make the publisher (which holds every
/// object of an open group) and the relays grow without bound.
const MAX_GROUP_OBJECTS: u64 = 8192;

/// quinn sends higher priorities first (moq-transport hands the MoQ
/// priority to quinn unchanged, inverting MoQ's lower-is-better), so audio
/// gets the higher number: under congestion it goes out before video.
const PRIORITY_AUDIO: u8 = 2;
const PRIORITY_VIDEO: u8 = 1;

impl GroupPolicy {
    pub(crate) fn for_kind(kind: &str) -> (GroupPolicy, u8) {
        if kind == "audio" {
            (GroupPolicy::Every(AUDIO_GROUP_TICKS), PRIORITY_AUDIO)
        } else {
            (GroupPolicy::Keyframes, PRIORITY_VIDEO)
        }
    }
}

/// Writes one track. [`TrackPublisher::push`] never blocks: objects are
/// queued in memory and sent by the session. Dropping it ends the track.
pub struct TrackPublisher {
    name: String,
    writer: SubgroupsWriter,
    current: Option<SubgroupWriter>,
    policy: GroupPolicy,
    priority: u8,
    next_group: u64,
    group_start: u32,
    group_objects: u64,
    closed: watch::Receiver<Option<CloseReason>>,
}

impl TrackPublisher {
    pub(crate) fn new(
        name: String,
        writer: SubgroupsWriter,
        policy: GroupPolicy,
        priority: u8,
        first_group: u64,
        closed: watch::Receiver<Option<CloseReason>>,
    ) -> TrackPublisher {
        TrackPublisher {
            name,
            writer,
            current: None,
            policy,
            priority,
            next_group: first_group,
            group_start: 0,
            group_objects: 0,
            closed,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one packet as one object; starts a new group first when the
    /// packet starts a keyframe (or a second of audio has passed).
    pub fn push(&mut self, packet: &MediaPacket) -> Result<(), MeshError> {
        if let Some(reason) = self.closed.borrow().as_ref() {
            return Err(reason.to_error());
        }
        let payload = wire::encode(packet).map_err(|e| MeshError::Config(e.to_string()))?;
        let new_group = match (&self.current, self.policy) {
            (None, _) => true,
            (Some(_), _) if self.group_objects >= MAX_GROUP_OBJECTS => true,
            (Some(_), GroupPolicy::Keyframes) => packet.keyframe,
            (Some(_), GroupPolicy::Every(ticks)) => {
                packet.timestamp.wrapping_sub(self.group_start) >= ticks
            }
        };
        if new_group {
            if let Some(group) = self.current.take() {
                // FIN: subscribers see the group end cleanly.
                let _ = group.finish();
            }
            let group = self
                .writer
                .create(Subgroup {
                    group_id: self.next_group,
                    subgroup_id: 0,
                    priority: self.priority,
                })
                .map_err(|e| MeshError::Disconnected(format!("track {}: {e}", self.name)))?;
            self.next_group += 1;
            self.group_start = packet.timestamp;
            self.group_objects = 0;
            self.current = Some(group);
        }
        let Some(group) = self.current.as_mut() else {
            // Set just above whenever it was missing.
            return Err(MeshError::Disconnected(format!(
                "track {}: no group",
                self.name
            )));
        };
        group
            .write(payload)
            .map_err(|e| MeshError::Disconnected(format!("track {}: {e}", self.name)))?;
        self.group_objects += 1;
        Ok(())
    }

    /// Ends the track cleanly (subscribers see TRACK_ENDED).
    pub fn finish(mut self) {
        if let Some(group) = self.current.take() {
            let _ = group.finish();
        }
        let _ = self.writer.close(moq_transport::serve::ServeError::Done);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use moq_transport::coding::TrackNamespace;
    use moq_transport::serve::{self, TrackReaderMode};

    use super::*;

    fn packet(ts: u32, keyframe: bool) -> MediaPacket {
        MediaPacket {
            payload_type: 96,
            sequence: ts as u16,
            timestamp: ts,
            marker: false,
            keyframe,
            payload: Bytes::from_static(b"x"),
        }
    }

    /// Pushes packets (timestamp, keyframe) and reports which group each
    /// object landed in, reading back through moq-transport's own reader.
    async fn groups(kind: &str, packets: &[(u32, bool)]) -> Vec<(u64, u64, u32)> {
        let (writer, reader) =
            serve::Track::new(TrackNamespace::from_utf8_path("t/s/p"), kind).produce();
        let (policy, priority) = GroupPolicy::for_kind(kind);
        let (_tx, closed) = watch::channel(None);
        let mut publisher = TrackPublisher::new(
            kind.to_owned(),
            writer.subgroups().expect("subgroups"),
            policy,
            priority,
            100,
            closed,
        );
        for (ts, key) in packets {
            publisher.push(&packet(*ts, *key)).expect("push");
        }
        publisher.finish();
        let TrackReaderMode::Subgroups(mut subgroups) = reader.mode().await.expect("mode") else {
            panic!("subgroups")
        };
        let mut out = Vec::new();
        while let Ok(Some(mut group)) = subgroups.next().await {
            while let Ok(Some(mut object)) = group.next().await {
                let p = wire::decode(&object.read_all().await.expect("read")).expect("decode");
                out.push((group.group_id, object.object_id, p.timestamp));
            }
        }
        out
    }

    #[tokio::test]
    async fn video_starts_a_group_at_each_keyframe() {
        let got = groups(
            "video",
            &[(1, false), (2, true), (3, false), (4, false), (5, true)],
        )
        .await;
        assert_eq!(
            got,
            [
                (100, 0, 1),
                (101, 0, 2),
                (101, 1, 3),
                (101, 2, 4),
                (102, 0, 5)
            ]
        );
    }

    #[tokio::test]
    async fn audio_starts_a_group_every_second() {
        let got = groups(
            "audio",
            &[(0, false), (47_040, false), (48_000, false), (96_000, true)],
        )
        .await;
        assert_eq!(
            got,
            [
                (100, 0, 0),
                (100, 1, 47_040),
                (101, 0, 48_000),
                (102, 0, 96_000)
            ]
        );
    }
}
