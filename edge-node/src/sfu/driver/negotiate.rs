//! A peer's media: tracks a publisher adds, the m-lines a subscriber offers
//! and gets, renegotiation, the data channel, and incoming RTP.

use super::*;

impl Driver {
    pub(super) async fn on_media_added(
        &mut self,
        id: PeerId,
        m: str0m::media::MediaAdded,
        now: Instant,
    ) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let kind = rtc_kind(m.kind);
        match p.direction {
            Direction::Subscribe => {
                // an m-line the client offered to receive on
                if matches!(m.direction, SdpDirection::SendOnly | SdpDirection::SendRecv) {
                    p.idle_slots.push((m.mid, kind));
                    self.assign_slots(id, now);
                }
            }
            Direction::Publish(source) => {
                let mut layers = HashMap::new();
                if let Some(sim) = &m.simulcast {
                    let mut rids: Vec<(usize, String)> = sim
                        .recv
                        .iter()
                        .enumerate()
                        .map(|(i, l)| (crate::sfu::codec::rid_rank(&l.rid, i), l.rid.to_string()))
                        .collect();
                    rids.sort();
                    for (layer, (_, rid)) in rids.into_iter().enumerate() {
                        layers.insert(rid, Layer(layer as u8));
                    }
                }
                let key = TrackKey {
                    publisher: id,
                    mid: m.mid,
                };
                let track_id = TrackId::from_uuid(Uuid::now_v7());
                let n_layers = layers.len().max(1) as u8;
                let clock = if kind == Kind::Audio { 48_000 } else { 90_000 };
                p.in_tracks.insert(
                    m.mid,
                    InTrack {
                        key,
                        kind,
                        codec: None,
                        layers: layers.clone(),
                        track_id,
                    },
                );
                let owner = p.owner.clone();
                let session = owner.session;
                self.room(session).add_track(
                    key,
                    match kind {
                        Kind::Audio => forward::Kind::Audio,
                        Kind::Video => forward::Kind::Video,
                    },
                    clock,
                    n_layers,
                );
                self.tap_subscribe(session, key, now);
                let mut rids: Vec<(Layer, String)> =
                    layers.into_iter().map(|(r, l)| (l, r)).collect();
                rids.sort();
                if let Some(h) = self.registry.get(session).await {
                    self.start_mesh_out(session, owner.tenant, now);
                    let codec = if kind == Kind::Audio { "opus" } else { "video" };
                    let body = EventBody::TrackPublished {
                        track_id,
                        participant_id: owner.participant,
                        kind,
                        source: if kind == Kind::Audio && source == TrackSource::Camera {
                            TrackSource::Microphone
                        } else {
                            source
                        },
                        codec: codec.into(),
                        simulcast: rids.into_iter().map(|(_, r)| r).collect(),
                    };
                    let _ = self
                        .events
                        .send((h, Actor::System, Command::System { event: body }));
                }
                // every subscriber of the room wants it
                let subs: Vec<PeerId> = self
                    .peers
                    .values()
                    .filter(|q| {
                        q.owner.session == session
                            && q.direction == Direction::Subscribe
                            && q.connected
                            && q.owner.role != protocol::Role::Public
                    })
                    .map(|q| q.id)
                    .collect();
                for s in subs {
                    if let Some(q) = self.peers.get_mut(&s) {
                        q.wants_add.push(key);
                    }
                    self.assign_slots(s, now);
                    self.renegotiate(s);
                }
            }
        }
    }

    /// Puts wanted tracks on idle offered m-lines (no renegotiation needed).
    pub(super) fn assign_slots(&mut self, id: PeerId, now: Instant) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        if !p.connected {
            return;
        }
        let session = p.owner.session;
        let Some(room) = self.rooms.get(&session) else {
            return;
        };
        let kinds: HashMap<TrackKey, forward::Kind> =
            room.tracks().map(|(k, kind)| (*k, kind)).collect();
        let mut assigned = Vec::new();
        p.wants_add.retain(|key| {
            let Some(kind) = kinds.get(key) else {
                return false;
            };
            let want = match kind {
                forward::Kind::Audio => Kind::Audio,
                forward::Kind::Video => Kind::Video,
            };
            if let Some(i) = p.idle_slots.iter().position(|(_, k)| *k == want) {
                let (mid, _) = p.idle_slots.remove(i);
                assigned.push((*key, mid));
                false
            } else {
                true
            }
        });
        for (key, mid) in &assigned {
            p.out.insert(*key, *mid);
        }
        let mut out = std::mem::take(&mut self.out);
        let room = self.rooms.entry(session).or_default();
        for (key, mid) in assigned {
            room.subscribe(id, key, mid, now, &mut out);
        }
        self.out = out;
        self.apply_outputs(session);
    }

    /// Offers wanted tracks (and stops removed ones) over the data channel,
    /// one offer at a time.
    pub(super) fn renegotiate(&mut self, id: PeerId) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(cid) = p.channel else { return };
        if p.pending.is_some() || (p.wants_add.is_empty() && p.wants_stop.is_empty()) {
            return;
        }
        let session = p.owner.session;
        let kinds: HashMap<TrackKey, forward::Kind> = self
            .rooms
            .get(&session)
            .map(|r| r.tracks().map(|(k, kind)| (*k, kind)).collect())
            .unwrap_or_default();
        let adds: Vec<TrackKey> = std::mem::take(&mut p.wants_add)
            .into_iter()
            .filter(|k| kinds.contains_key(k))
            .collect();
        let stops = std::mem::take(&mut p.wants_stop);
        let mut api = p.rtc.sdp_api();
        let mut planned = Vec::new();
        for key in adds {
            let kind = match kinds[&key] {
                forward::Kind::Audio => MediaKind::Audio,
                forward::Kind::Video => MediaKind::Video,
            };
            let mid = api.add_media(
                kind,
                SdpDirection::SendOnly,
                Some(format!("p{}", key.publisher.0)),
                None,
                None,
            );
            planned.push((key, mid));
        }
        for mid in stops {
            api.stop_media(mid);
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        let msg = serde_json::json!({ "type": "offer", "sdp": offer.to_sdp_string() }).to_string();
        if let Some(mut ch) = p.rtc.channel(cid)
            && let Err(e) = ch.write(false, msg.as_bytes())
        {
            tracing::debug!(peer = id.0, error = %e, "offer not sent");
        }
        p.pending = Some((pending, planned));
        self.dirty.push_back(id);
    }

    pub(super) fn on_channel_data(&mut self, id: PeerId, data: &[u8], now: Instant) {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(data) else {
            return;
        };
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        match msg["type"].as_str() {
            Some("answer") => {
                let Some((pending, planned)) = p.pending.take() else {
                    return;
                };
                let Some(sdp) = msg["sdp"].as_str() else {
                    return;
                };
                let Ok(answer) = SdpAnswer::from_sdp_string(sdp) else {
                    return;
                };
                if let Err(e) = p.rtc.sdp_api().accept_answer(pending, answer) {
                    tracing::debug!(peer = id.0, error = %e, "renegotiation answer refused");
                    return;
                }
                for (key, mid) in &planned {
                    p.out.insert(*key, *mid);
                }
                let session = p.owner.session;
                let mut out = std::mem::take(&mut self.out);
                let room = self.rooms.entry(session).or_default();
                for (key, mid) in planned {
                    if room.has_track(key) {
                        room.subscribe(id, key, mid, now, &mut out);
                    }
                }
                self.out = out;
                self.apply_outputs(session);
                self.dirty.push_back(id);
                self.renegotiate(id);
            }
            Some("layer") => {
                // a client caps its layer (e.g. a thumbnail): {"type":"layer","max":0}
                let max = msg["max"].as_u64().map(|m| Layer(m.min(2) as u8));
                let session = p.owner.session;
                let mut out = std::mem::take(&mut self.out);
                self.room(session).set_max_layer(id, max, now, &mut out);
                self.out = out;
                self.apply_outputs(session);
            }
            _ => {}
        }
    }

    pub(super) fn on_rtp(&mut self, id: PeerId, pkt: str0m::rtp::RtpPacket, now: Instant) {
        self.stats.packets_in.fetch_add(1, Ordering::Relaxed);
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        // Browsers stop sending the mid/rid header extensions once the
        // stream is established: str0m's receive stream for the SSRC knows them.
        let ssrc = pkt.header.ssrc;
        let (stream_mid, stream_rid) = match p.rtc.direct_api().stream_rx(&ssrc) {
            Some(rx) => (Some(rx.mid()), rx.rid()),
            None => (None, None),
        };
        let Some(mid) = pkt.header.ext_vals.mid.or(stream_mid) else {
            return;
        };
        let rid = pkt.header.ext_vals.rid.or(stream_rid);
        let pt = pkt.header.payload_type;
        let codec = p
            .rtc
            .codec_config()
            .find(|c| c.pt() == pt)
            .map(|c| c.spec().codec);
        let Some(t) = p.in_tracks.get_mut(&mid) else {
            return;
        };
        if t.codec.is_none() {
            t.codec = codec;
        }
        let Some(codec) = codec else { return };
        let layer = match rid {
            Some(rid) => match t.layers.get(&rid.to_string()) {
                Some(l) => *l,
                None => return,
            },
            None => Layer(0),
        };
        if tracing::enabled!(tracing::Level::TRACE) {
            let key = crate::sfu::codec::starts_keyframe(codec, &pkt.payload);
            let head: Vec<u8> = pkt.payload.iter().take(8).copied().collect();
            tracing::trace!(peer = id.0, %mid, ?rid, ?layer, key, ?codec, seq = *pkt.seq_no, ?head, "rtp in");
        }
        let incoming = Incoming {
            track: t.key,
            layer,
            seq: *pkt.seq_no,
            ts: pkt.time.numer(),
            keyframe: crate::sfu::codec::starts_keyframe(codec, &pkt.payload),
            picture_id: crate::sfu::codec::vp8_picture_id(codec, &pkt.payload),
            bytes: pkt.payload.len(),
            at: now,
        };
        let nackable = t.kind == Kind::Video;
        let session = p.owner.session;
        let origin = (p.owner.participant, p.direction, t.kind, t.key);
        let Some(params) = p.rtc.codec_config().find(|c| c.pt() == pt).cloned() else {
            return;
        };
        let mut out = std::mem::take(&mut self.out);
        out.forward.clear();
        self.room(session).on_packet(&incoming, &mut out);
        let marker = pkt.header.marker;
        for f in out.forward.drain(..) {
            if self.taps.contains_key(&f.subscriber) {
                Self::to_tap(&mut self.taps, origin, codec, marker, &f, &pkt.payload);
                continue;
            }
            let Some(sub) = self.peers.get_mut(&f.subscriber) else {
                continue;
            };
            let Some(sub_pt) = sub.rtc.codec_config().match_params(params).map(|p| p.pt()) else {
                continue;
            };
            if write_forward(sub, &f, codec, sub_pt, marker, nackable, &pkt.payload, now) {
                self.stats.packets_out.fetch_add(1, Ordering::Relaxed);
                self.dirty.push_back(f.subscriber);
            }
        }
        self.out = out;
        self.apply_outputs(session);
    }
}
