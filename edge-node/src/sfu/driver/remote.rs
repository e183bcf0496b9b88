//! Tracks that come from the relay (a class hosted on another edge, or the
//! program): added to the room like a publisher's, seen by whom the media
//! policy says.

use super::*;

impl Driver {
    /// Hands a hosted session's tap (best layer, continuous numbering) to
    /// whoever publishes hosted sessions (the relay bridge), once.
    pub(super) fn start_mesh_out(
        &mut self,
        session: SessionId,
        tenant: protocol::TenantId,
        now: Instant,
    ) {
        let Some(hosted) = self.hosted.clone() else {
            return;
        };
        if !self.mesh_out.insert(session) {
            return;
        }
        let (tx, rx) = mpsc::channel(4096);
        self.add_tap(session, TapKind::Mesh, tx, now);
        let _ = hosted.send(crate::sfu::HostedTap {
            session,
            tenant,
            tap: rx,
        });
    }

    /// A track from the relay joins the room like a local publisher's.
    pub(super) fn add_remote(
        &mut self,
        session: SessionId,
        participant: ParticipantId,
        source: TrackSource,
        codec: TapCodec,
        keyframes: mpsc::Sender<()>,
        now: Instant,
    ) -> TrackKey {
        let publisher = match self.remote_peers.get(&(session, participant)) {
            Some(p) => *p,
            None => {
                let p = PeerId(self.next_id);
                self.next_id += 1;
                self.remote_peers.insert((session, participant), p);
                p
            }
        };
        let (kind, clock, codec) = match codec {
            TapCodec::Opus => (forward::Kind::Audio, 48_000, Codec::Opus),
            TapCodec::Vp8 => (forward::Kind::Video, 90_000, Codec::Vp8),
            TapCodec::H264 => (forward::Kind::Video, 90_000, Codec::H264),
        };
        let mid = Mid::from(format!("{source:?}-{kind:?}").to_lowercase().as_str());
        let key = TrackKey { publisher, mid };
        if let Some(old) = self.remote.remove(&key) {
            drop(old);
            self.drop_track_for_subscribers(session, key);
        }
        let program = source == TrackSource::Program;
        self.remote.insert(
            key,
            RemoteTrack {
                session,
                program,
                codec,
                kind,
                seq: None,
                ts: None,
                keyframes,
            },
        );
        self.room(session).add_track(key, kind, clock, 1);
        tracing::info!(session_id = %session, participant_id = %participant, ?source, ?codec, "relay track added");
        let subs: Vec<PeerId> = self
            .peers
            .values()
            .filter(|q| {
                q.owner.session == session && q.direction == Direction::Subscribe && q.connected
            })
            .filter(|q| (q.owner.role == protocol::Role::Public) == program)
            .map(|q| q.id)
            .collect();
        for s in subs {
            if let Some(q) = self.peers.get_mut(&s) {
                q.wants_add.push(key);
            }
            self.assign_slots(s, now);
            self.renegotiate(s);
        }
        key
    }

    /// Whether a viewer of `role` is sent the track (`policy::sees`).
    pub(super) fn visible(&self, role: protocol::Role, key: &TrackKey) -> bool {
        policy::sees(role, self.remote.get(key).is_some_and(|r| r.program))
    }

    pub(super) fn remove_remote(&mut self, key: TrackKey) {
        if let Some(rt) = self.remote.remove(&key) {
            let session = rt.session;
            self.drop_track_for_subscribers(session, key);
            if !self.peers.values().any(|q| q.owner.session == session)
                && !self.remote.values().any(|r| r.session == session)
            {
                self.rooms.remove(&session);
                self.remote_peers.retain(|(s, _), _| *s != session);
            }
        }
    }

    /// Takes a track out of the room and off every subscriber.
    pub(super) fn drop_track_for_subscribers(&mut self, session: SessionId, key: TrackKey) {
        let stopped = self.room(session).remove_track(key);
        for (sub, mid) in stopped {
            if let Some(q) = self.peers.get_mut(&sub) {
                q.out.retain(|_, m| *m != mid);
                q.wants_stop.push(mid);
            }
            self.renegotiate(sub);
        }
    }

    /// One packet from the relay: forwarded like a local publisher's.
    pub(super) fn on_remote_packet(
        &mut self,
        key: TrackKey,
        pkt: crate::rtp::MediaPacket,
        now: Instant,
    ) {
        let Some(rt) = self.remote.get_mut(&key) else {
            return;
        };
        let seq = extend(&mut rt.seq, pkt.sequence as u64, 16);
        let ts = extend(&mut rt.ts, pkt.timestamp as u64, 32);
        let (codec, kind, session) = (rt.codec, rt.kind, rt.session);
        self.stats.packets_in.fetch_add(1, Ordering::Relaxed);
        let incoming = Incoming {
            track: key,
            layer: Layer(0),
            seq,
            ts,
            keyframe: kind == forward::Kind::Audio
                || crate::sfu::codec::starts_keyframe(codec, &pkt.payload),
            picture_id: crate::sfu::codec::vp8_picture_id(codec, &pkt.payload),
            bytes: pkt.payload.len(),
            at: now,
        };
        let mut out = std::mem::take(&mut self.out);
        out.forward.clear();
        self.room(session).on_packet(&incoming, &mut out);
        let payload: &[u8] = &pkt.payload;
        for f in out.forward.drain(..) {
            let Some(sub) = self.peers.get_mut(&f.subscriber) else {
                continue;
            };
            // the payload type this m-line negotiated for the codec (H.264:
            // packetization mode 1, which is what comes over the relay)
            let negotiated: Vec<str0m::media::Pt> = sub
                .rtc
                .media(f.out_mid)
                .map(|m| m.remote_pts().to_vec())
                .unwrap_or_default();
            let sub_pt = sub
                .rtc
                .codec_config()
                .iter()
                .filter(|p| p.spec().codec == codec && negotiated.contains(&p.pt()))
                .max_by_key(|p| p.spec().format.packetization_mode == Some(1))
                .map(|p| p.pt());
            let Some(sub_pt) = sub_pt else {
                continue;
            };
            if write_forward(
                sub,
                &f,
                codec,
                sub_pt,
                pkt.marker,
                kind == forward::Kind::Video,
                payload,
                now,
            ) {
                self.stats.packets_out.fetch_add(1, Ordering::Relaxed);
                self.dirty.push_back(f.subscriber);
            }
        }
        self.out = out;
        self.apply_outputs(session);
    }
}
