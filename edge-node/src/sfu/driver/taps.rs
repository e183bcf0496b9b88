//! The recorder's and the mesh's taps: a subscriber of the forwarding core
//! like any other, whose packets go to a channel instead of a browser.

use super::*;

impl Driver {
    pub(super) fn add_tap(
        &mut self,
        session: SessionId,
        kind: TapKind,
        tx: mpsc::Sender<TapMsg>,
        now: Instant,
    ) {
        let old: Vec<PeerId> = self
            .taps
            .values()
            .filter(|t| t.session == session && t.kind == kind)
            .map(|t| t.peer)
            .collect();
        for peer in old {
            self.taps.remove(&peer);
            if let Some(room) = self.rooms.get_mut(&session) {
                room.remove_subscriber(peer);
            }
        }
        let peer = PeerId(self.next_id);
        self.next_id += 1;
        self.taps.insert(
            peer,
            Tap {
                peer,
                session,
                kind,
                tx,
                tracks: HashMap::new(),
                next_track: 1,
                dropped: 0,
            },
        );
        let keys: Vec<TrackKey> = self
            .rooms
            .get(&session)
            .map(|r| r.tracks().map(|(k, _)| *k).collect())
            .unwrap_or_default();
        for key in keys {
            self.tap_subscribe_one(peer, key, now);
        }
        tracing::info!(session_id = %session, ?kind, "tap attached");
    }

    pub(super) fn tap_subscribe(&mut self, session: SessionId, key: TrackKey, now: Instant) {
        let peers: Vec<PeerId> = self
            .taps
            .values()
            .filter(|t| t.session == session)
            .map(|t| t.peer)
            .collect();
        for peer in peers {
            self.tap_subscribe_one(peer, key, now);
        }
    }

    pub(super) fn tap_subscribe_one(&mut self, peer: PeerId, key: TrackKey, now: Instant) {
        let Some(tap) = self.taps.get_mut(&peer) else {
            return;
        };
        // the mesh carries only this edge's own publishers; the recorder
        // composes participants, never the program itself
        match (tap.kind, self.remote.get(&key)) {
            (TapKind::Mesh, Some(_)) => return,
            (TapKind::Recorder, Some(r)) if r.program => return,
            _ => {}
        }
        let session = tap.session;
        let id = tap.next_track;
        tap.next_track += 1;
        let mid = Mid::from(format!("t{id}").as_str());
        tap.tracks.insert(
            key,
            TapTrack {
                id,
                mid,
                announced: false,
            },
        );
        let mut out = std::mem::take(&mut self.out);
        let room = self.rooms.entry(session).or_default();
        room.subscribe(peer, key, mid, now, &mut out);
        room.set_estimate(peer, TAP_ESTIMATE_BPS, now, &mut out);
        self.out = out;
        self.apply_outputs(session);
    }

    pub(super) fn tap_ended(&mut self, session: SessionId, key: TrackKey) {
        for tap in self.taps.values_mut().filter(|t| t.session == session) {
            if let Some(t) = tap.tracks.remove(&key) {
                let _ = tap.tx.try_send(TapMsg::Ended { track: t.id });
            }
        }
    }

    /// Once a second: drop taps nobody reads, and re-offer the tap the best
    /// layers now that their rates are measured.
    pub(super) fn tick_taps(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_tap_tick) < Duration::from_secs(1) {
            return;
        }
        self.last_tap_tick = now;
        let closed: Vec<PeerId> = self
            .taps
            .values()
            .filter(|t| t.tx.is_closed())
            .map(|t| t.peer)
            .collect();
        for peer in closed {
            if let Some(t) = self.taps.remove(&peer) {
                if let Some(room) = self.rooms.get_mut(&t.session) {
                    room.remove_subscriber(t.peer);
                }
                if t.kind == TapKind::Mesh {
                    self.mesh_out.remove(&t.session);
                }
                tracing::info!(session_id = %t.session, kind = ?t.kind, dropped = t.dropped, "tap detached");
            }
        }
        let taps: Vec<(SessionId, PeerId)> =
            self.taps.values().map(|t| (t.session, t.peer)).collect();
        for (s, peer) in taps {
            let mut out = std::mem::take(&mut self.out);
            if let Some(room) = self.rooms.get_mut(&s) {
                room.set_estimate(peer, TAP_ESTIMATE_BPS, now, &mut out);
            }
            self.out = out;
            self.apply_outputs(s);
        }
    }

    /// Hands one forwarded packet to the session's tap (never blocks).
    pub(super) fn to_tap(
        taps: &mut HashMap<PeerId, Tap>,
        (participant, direction, kind, key): (ParticipantId, Direction, Kind, TrackKey),
        codec: Codec,
        marker: bool,
        f: &forward::Forward,
        payload: &[u8],
    ) {
        let Some(tap) = taps.get_mut(&f.subscriber) else {
            return;
        };
        let tap_codec = match codec {
            Codec::Vp8 => TapCodec::Vp8,
            Codec::H264 => TapCodec::H264,
            Codec::Opus => TapCodec::Opus,
            _ => return,
        };
        let Some(t) = tap.tracks.get_mut(&key) else {
            return;
        };
        if !t.announced {
            let source = match (direction, kind) {
                (Direction::Publish(TrackSource::Camera), Kind::Audio) => TrackSource::Microphone,
                (Direction::Publish(s), _) => s,
                (Direction::Subscribe, _) => return,
            };
            let msg = TapMsg::Track {
                track: t.id,
                participant,
                source,
                codec: tap_codec,
            };
            if tap.tx.try_send(msg).is_err() {
                tap.dropped += 1;
                return;
            }
            t.announced = true;
        }
        let packet = crate::rtp::packet(
            tap_codec.payload_type(),
            marker,
            f.seq as u16,
            f.ts,
            t.id,
            payload,
        );
        if tap
            .tx
            .try_send(TapMsg::Rtp {
                track: t.id,
                packet,
            })
            .is_err()
        {
            tap.dropped += 1;
        }
    }
}
