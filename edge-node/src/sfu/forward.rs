//! The forwarding core of the SFU: a plain state machine, no sockets, no
//! clocks (time comes in with every input).
//!
//! It knows the published tracks of a room (with their simulcast layers and
//! each layer's measured bitrate), which subscriber receives which track, and
//! per subscriber and track (a "down track") the layer being forwarded and
//! the rewriting that keeps the subscriber's stream continuous: one outgoing
//! SSRC per down track (the subscriber's m-line), sequence numbers without
//! holes or jumps across layer switches, RTP timestamps that advance with
//! wall time across a switch, and VP8 picture ids that stay consecutive.
//! A switch happens only on a keyframe of the new layer, which it requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use str0m::media::Mid;

/// A peer connection on this edge (publisher or subscriber).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

/// A published track: its publisher and the publisher's m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackKey {
    pub publisher: PeerId,
    pub mid: Mid,
}

/// A simulcast layer, 0 = lowest. Tracks without simulcast have only 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Layer(pub u8);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Audio,
    Video,
}

/// One incoming RTP packet, as far as forwarding cares.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    pub track: TrackKey,
    pub layer: Layer,
    /// Extended sequence number.
    pub seq: u64,
    /// Extended RTP time, in the codec clock.
    pub ts: u64,
    /// This packet starts a keyframe (always true for audio).
    pub keyframe: bool,
    /// VP8 picture id, when the payload descriptor has one.
    pub picture_id: Option<u16>,
    pub bytes: usize,
    pub at: Instant,
}

/// Send this packet to this subscriber with these rewritten fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forward {
    pub subscriber: PeerId,
    pub out_mid: Mid,
    pub seq: u64,
    pub ts: u32,
    pub picture_id: Option<u16>,
}

/// Ask the publisher of `track` for a keyframe on `layer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyframeRequest {
    pub track: TrackKey,
    pub layer: Layer,
}

#[derive(Debug, Default)]
pub(crate) struct Outputs {
    pub forward: Vec<Forward>,
    pub keyframes: Vec<KeyframeRequest>,
}

/// Keyframe requests for one layer are sent at most this often.
const KEYFRAME_THROTTLE: Duration = Duration::from_millis(300);
/// Layer bitrates are measured over windows this long.
const RATE_WINDOW: Duration = Duration::from_millis(500);
/// Switch up only when the estimate clears the layer's rate by this factor.
const UPGRADE_HEADROOM: f64 = 1.15;
/// Bandwidth an audio down track is assumed to take.
const AUDIO_BPS: u64 = 64_000;

/// A layer that sent nothing for this long is not being sent (browsers drop
/// their top layers when the camera or the uplink cannot feed them).
const LAYER_SILENCE: Duration = Duration::from_millis(1500);

#[derive(Debug, Default, Clone)]
struct LayerRate {
    window_start: Option<Instant>,
    window_bytes: u64,
    /// Bits per second over the last full window.
    bps: u64,
    last_packet: Option<Instant>,
    last_keyframe_request: Option<Instant>,
    /// A request was held back by the throttle: send it when it allows.
    keyframe_wanted: bool,
}

impl LayerRate {
    fn active(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_SILENCE)
    }

    fn add(&mut self, bytes: usize, at: Instant) {
        self.last_packet = Some(at);
        let start = *self.window_start.get_or_insert(at);
        let elapsed = at.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            self.bps = (self.window_bytes * 8) * 1000 / elapsed.as_millis().max(1) as u64;
            self.window_start = Some(at);
            self.window_bytes = 0;
        }
        self.window_bytes += bytes as u64;
    }
}

#[derive(Debug)]
struct PubTrack {
    kind: Kind,
    clock_rate: u32,
    layers: Vec<LayerRate>,
}

#[derive(Debug)]
struct DownTrack {
    out_mid: Mid,
    /// The layer being forwarded now.
    current: Option<Layer>,
    /// The layer we want (switch on its next keyframe).
    target: Layer,
    /// out = in + offset, for the current layer.
    seq_offset: i64,
    ts_offset: i64,
    pic_offset: i32,
    /// First incoming seq of the current layer: older packets are dropped.
    switch_seq: u64,
    last_out_seq: Option<u64>,
    last_out_ts: u64,
    last_out_pic: Option<u16>,
    last_out_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Subscriber {
    /// Latest send-side bandwidth estimate towards this subscriber.
    estimate_bps: Option<u64>,
    /// Layer choice forced by a client (e.g. a small tile), if any.
    max_layer: Option<Layer>,
}

#[derive(Debug, Default)]
pub(crate) struct Room {
    tracks: HashMap<TrackKey, PubTrack>,
    down: HashMap<(PeerId, TrackKey), DownTrack>,
    /// track → its subscribers
    fanout: HashMap<TrackKey, Vec<PeerId>>,
    subscribers: HashMap<PeerId, Subscriber>,
}

impl Room {
    pub(crate) fn add_track(&mut self, key: TrackKey, kind: Kind, clock_rate: u32, layers: u8) {
        let layers = (0..layers.max(1)).map(|_| LayerRate::default()).collect();
        self.tracks.insert(
            key,
            PubTrack {
                kind,
                clock_rate,
                layers,
            },
        );
        self.fanout.entry(key).or_default();
    }

    /// Removes a track; returns the subscribers that were receiving it, with
    /// the m-line each used (to stop it there).
    pub(crate) fn remove_track(&mut self, key: TrackKey) -> Vec<(PeerId, Mid)> {
        self.tracks.remove(&key);
        let subs = self.fanout.remove(&key).unwrap_or_default();
        subs.into_iter()
            .filter_map(|s| self.down.remove(&(s, key)).map(|d| (s, d.out_mid)))
            .collect()
    }

    pub(crate) fn tracks(&self) -> impl Iterator<Item = (&TrackKey, Kind)> {
        self.tracks.iter().map(|(k, t)| (k, t.kind))
    }

    pub(crate) fn has_track(&self, key: TrackKey) -> bool {
        self.tracks.contains_key(&key)
    }

    /// Starts forwarding `key` to `sub` on its m-line `out_mid`. The first
    /// layer is the lowest (a fast start); allocation raises it as the
    /// bandwidth estimate allows. Requests a keyframe to start from.
    pub(crate) fn subscribe(
        &mut self,
        sub: PeerId,
        key: TrackKey,
        out_mid: Mid,
        now: Instant,
        out: &mut Outputs,
    ) {
        let Some(track) = self.tracks.get_mut(&key) else {
            return;
        };
        self.subscribers.entry(sub).or_default();
        let dt = DownTrack {
            out_mid,
            current: None,
            target: Layer(0),
            seq_offset: 0,
            ts_offset: 0,
            pic_offset: 0,
            switch_seq: 0,
            last_out_seq: None,
            last_out_ts: 0,
            last_out_pic: None,
            last_out_at: None,
        };
        self.down.insert((sub, key), dt);
        let fan = self.fanout.entry(key).or_default();
        if !fan.contains(&sub) {
            fan.push(sub);
        }
        if track.kind == Kind::Video {
            request_keyframe(track, key, Layer(0), now, out);
        }
        self.allocate(sub, now, out);
    }

    /// Forgets a subscriber entirely (its peer is gone).
    pub(crate) fn remove_subscriber(&mut self, sub: PeerId) {
        self.subscribers.remove(&sub);
        self.down.retain(|(s, _), _| *s != sub);
        for subs in self.fanout.values_mut() {
            subs.retain(|s| *s != sub);
        }
    }

    /// The subscriber's downstream estimate changed: re-choose its layers.
    pub(crate) fn set_estimate(&mut self, sub: PeerId, bps: u64, now: Instant, out: &mut Outputs) {
        self.subscribers.entry(sub).or_default().estimate_bps = Some(bps);
        self.allocate(sub, now, out);
    }

    /// Caps the layers a subscriber receives (e.g. a thumbnail view).
    pub(crate) fn set_max_layer(
        &mut self,
        sub: PeerId,
        max: Option<Layer>,
        now: Instant,
        out: &mut Outputs,
    ) {
        self.subscribers.entry(sub).or_default().max_layer = max;
        self.allocate(sub, now, out);
    }

    /// The layer a subscriber currently receives of a track (tests watch it).
    #[cfg(test)]
    pub(crate) fn current_layer(&self, sub: PeerId, key: TrackKey) -> Option<Layer> {
        self.down.get(&(sub, key)).and_then(|d| d.current)
    }

    #[cfg(test)]
    pub(crate) fn target_layer(&self, sub: PeerId, key: TrackKey) -> Option<Layer> {
        self.down.get(&(sub, key)).map(|d| d.target)
    }

    /// A subscriber lost a picture (PLI/FIR on its m-line): ask the publisher
    /// for a keyframe of the layer this subscriber is forwarded.
    pub(crate) fn on_keyframe_request(
        &mut self,
        sub: PeerId,
        out_mid: Mid,
        now: Instant,
        out: &mut Outputs,
    ) {
        let Some((key, layer)) = self
            .down
            .iter()
            .find(|((s, _), d)| *s == sub && d.out_mid == out_mid)
            .map(|((_, k), d)| (*k, d.current.unwrap_or(d.target)))
        else {
            return;
        };
        if let Some(track) = self.tracks.get_mut(&key) {
            request_keyframe(track, key, layer, now, out);
        }
    }

    /// Chooses each video down track's target layer from the subscriber's
    /// estimate and the layers' measured rates.
    fn allocate(&mut self, sub: PeerId, now: Instant, out: &mut Outputs) {
        let Some(s) = self.subscribers.get(&sub) else {
            return;
        };
        let keys: Vec<TrackKey> = self
            .down
            .keys()
            .filter(|(p, _)| *p == sub)
            .map(|(_, k)| *k)
            .collect();
        let video: Vec<TrackKey> = keys
            .iter()
            .copied()
            .filter(|k| self.tracks.get(k).is_some_and(|t| t.kind == Kind::Video))
            .collect();
        if video.is_empty() {
            return;
        }
        let audio = (keys.len() - video.len()) as u64;
        let Some(estimate) = s.estimate_bps else {
            return;
        };
        let share = estimate.saturating_sub(audio * AUDIO_BPS) / video.len() as u64;
        let max_layer = s.max_layer;
        for key in video {
            let Some(track) = self.tracks.get_mut(&key) else {
                continue;
            };
            let Some(dt) = self.down.get_mut(&(sub, key)) else {
                continue;
            };
            let top = track.layers.len() as u8 - 1;
            let cap = max_layer.map(|m| m.0.min(top)).unwrap_or(top);
            let current = dt.current.unwrap_or(dt.target);
            // highest sending layer that fits: staying put needs 1x, moving up
            // needs headroom; if none fits, the lowest sending layer
            let active: Vec<u8> = (0..=cap)
                .filter(|l| track.layers[*l as usize].active(now))
                .collect();
            let Some(&lowest) = active.first() else {
                continue;
            };
            let mut choice = Layer(lowest);
            for &l in &active {
                let rate = track.layers[l as usize].bps.max(1) as f64;
                let need = if Layer(l) > current {
                    rate * UPGRADE_HEADROOM
                } else {
                    rate
                };
                if (share as f64) >= need {
                    choice = Layer(l);
                }
            }
            if choice != dt.target {
                dt.target = choice;
                request_keyframe(track, key, choice, now, out);
            }
        }
    }

    /// Routes one incoming packet to every subscriber that should get it.
    pub(crate) fn on_packet(&mut self, p: &Incoming, out: &mut Outputs) {
        let Some(track) = self.tracks.get_mut(&p.track) else {
            return;
        };
        if let Some(rate) = track.layers.get_mut(p.layer.0 as usize) {
            rate.add(p.bytes, p.at);
            if rate.keyframe_wanted {
                request_keyframe(track, p.track, p.layer, p.at, out);
            }
        }
        let clock = track.clock_rate as i64;
        let Some(subs) = self.fanout.get(&p.track) else {
            return;
        };
        for sub in subs {
            let Some(dt) = self.down.get_mut(&(*sub, p.track)) else {
                continue;
            };
            let switching = dt.current != Some(dt.target) && p.layer == dt.target;
            if switching {
                if !p.keyframe {
                    continue;
                }
                // continue the outgoing stream exactly where it left off
                let next_seq = dt.last_out_seq.map(|s| s + 1).unwrap_or(1);
                dt.seq_offset = next_seq as i64 - p.seq as i64;
                let next_ts = match dt.last_out_at {
                    Some(last) => {
                        let gap = p.at.saturating_duration_since(last).as_micros() as i64 * clock
                            / 1_000_000;
                        dt.last_out_ts as i64 + gap.max(1)
                    }
                    None => p.ts as i64,
                };
                dt.ts_offset = next_ts - p.ts as i64;
                if let Some(pic) = p.picture_id {
                    let next_pic = dt
                        .last_out_pic
                        .map(|x| (x as i32 + 1) & 0x7fff)
                        .unwrap_or(pic as i32);
                    dt.pic_offset = next_pic - pic as i32;
                }
                dt.switch_seq = p.seq;
                dt.current = Some(dt.target);
            } else if dt.current != Some(p.layer) || p.seq < dt.switch_seq {
                continue;
            }
            let seq = (p.seq as i64 + dt.seq_offset).max(0) as u64;
            let ts = (p.ts as i64 + dt.ts_offset).max(0) as u64;
            let picture_id = p
                .picture_id
                .map(|pic| ((pic as i32 + dt.pic_offset).rem_euclid(0x8000)) as u16);
            if dt.last_out_seq.is_none_or(|l| seq > l) {
                dt.last_out_seq = Some(seq);
                dt.last_out_ts = ts;
                dt.last_out_at = Some(p.at);
                if picture_id.is_some() {
                    dt.last_out_pic = picture_id;
                }
            }
            out.forward.push(Forward {
                subscriber: *sub,
                out_mid: dt.out_mid,
                seq,
                ts: ts as u32,
                picture_id,
            });
        }
    }
}

fn request_keyframe(
    track: &mut PubTrack,
    key: TrackKey,
    layer: Layer,
    now: Instant,
    out: &mut Outputs,
) {
    let Some(rate) = track.layers.get_mut(layer.0 as usize) else {
        return;
    };
    if rate
        .last_keyframe_request
        .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_THROTTLE)
    {
        // a subscriber that joined just after the last keyframe still needs
        // one: remember, and ask as soon as the throttle allows
        rate.keyframe_wanted = true;
        return;
    }
    rate.keyframe_wanted = false;
    rate.last_keyframe_request = Some(now);
    out.keyframes.push(KeyframeRequest { track: key, layer });
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLISHER: PeerId = PeerId(1);
    const SUB: PeerId = PeerId(10);

    fn key() -> TrackKey {
        TrackKey {
            publisher: PUBLISHER,
            mid: Mid::from("v0"),
        }
    }

    /// A simulated simulcast publisher: three layers, 30 fps, each frame one
    /// packet per layer, keyframes every `gop` frames, layer l sending
    /// (l+1) * 200 kbit/s.
    struct Sim {
        t0: Instant,
        frame: u64,
        seq: [u64; 3],
        pic: [u16; 3],
        gop: u64,
    }

    impl Sim {
        fn new(gop: u64) -> Sim {
            // layers start at unrelated sequence numbers and picture ids, as
            // browsers' encodings do
            Sim {
                t0: Instant::now(),
                frame: 0,
                seq: [100, 40_000, 9],
                pic: [5, 3000, 32_000],
                gop,
            }
        }
        fn now(&self) -> Instant {
            self.t0 + Duration::from_millis(self.frame * 1000 / 30)
        }
        /// The packets of the next frame, all layers.
        fn frame(&mut self, force_key: bool) -> Vec<Incoming> {
            self.frame += 1;
            let is_key = force_key || self.frame % self.gop == 1;
            (0..3u8)
                .map(|l| {
                    self.seq[l as usize] += 1;
                    self.pic[l as usize] = (self.pic[l as usize] + 1) & 0x7fff;
                    Incoming {
                        track: key(),
                        layer: Layer(l),
                        seq: self.seq[l as usize],
                        // each layer has its own random timestamp base
                        ts: 1_000_000 * (l as u64 + 1) + self.frame * 3000,
                        keyframe: is_key,
                        picture_id: Some(self.pic[l as usize]),
                        bytes: (l as usize + 1) * 200_000 / 8 / 30,
                        at: self.now(),
                    }
                })
                .collect()
        }
    }

    fn room() -> Room {
        let mut r = Room::default();
        r.add_track(key(), Kind::Video, 90_000, 3);
        r
    }

    fn run(r: &mut Room, sim: &mut Sim, frames: usize, out: &mut Outputs) {
        for _ in 0..frames {
            for p in sim.frame(false) {
                r.on_packet(&p, out);
            }
        }
    }

    /// Sequence numbers continuous, timestamps and picture ids increasing.
    fn assert_continuous(fwd: &[Forward]) {
        for w in fwd.windows(2) {
            assert_eq!(
                w[1].seq,
                w[0].seq + 1,
                "seq continuity: {:?} → {:?}",
                w[0],
                w[1]
            );
            assert!(
                w[1].ts > w[0].ts,
                "timestamps advance: {:?} → {:?}",
                w[0],
                w[1]
            );
            let (a, b) = (w[0].picture_id.unwrap(), w[1].picture_id.unwrap());
            assert_eq!(b, (a + 1) & 0x7fff, "picture ids consecutive");
        }
    }

    #[test]
    fn a_new_subscriber_starts_on_a_keyframe_of_the_lowest_layer() {
        let mut r = room();
        let mut sim = Sim::new(90);
        let mut out = Outputs::default();
        run(&mut r, &mut sim, 5, &mut out); // nobody subscribed yet
        r.subscribe(SUB, key(), Mid::from("o1"), sim.now(), &mut out);
        assert_eq!(
            out.keyframes,
            vec![KeyframeRequest {
                track: key(),
                layer: Layer(0)
            }]
        );
        out = Outputs::default();
        run(&mut r, &mut sim, 10, &mut out);
        assert!(out.forward.is_empty(), "nothing until a keyframe");
        for p in sim.frame(true) {
            r.on_packet(&p, &mut out);
        }
        run(&mut r, &mut sim, 10, &mut out);
        assert_eq!(
            out.forward.len(),
            11,
            "the keyframe and what follows, one layer only"
        );
        assert_eq!(
            out.forward[0].seq, 1,
            "the outgoing stream starts at 1 (ROC 0)"
        );
        assert_continuous(&out.forward);
        assert_eq!(r.current_layer(SUB, key()), Some(Layer(0)));
    }

    #[test]
    fn layers_follow_the_bandwidth_estimate_and_switch_on_keyframes_only() {
        let mut r = room();
        let mut sim = Sim::new(1000); // keyframes only when requested
        let mut out = Outputs::default();
        r.subscribe(SUB, key(), Mid::from("o1"), sim.now(), &mut out);
        for p in sim.frame(true) {
            r.on_packet(&p, &mut out);
        }
        run(&mut r, &mut sim, 60, &mut out); // rates measured; on layer 0
        assert_eq!(r.current_layer(SUB, key()), Some(Layer(0)));

        // plenty of bandwidth: target the top layer, request its keyframe
        out.keyframes.clear();
        r.set_estimate(SUB, 2_000_000, sim.now(), &mut out);
        assert_eq!(r.target_layer(SUB, key()), Some(Layer(2)));
        assert_eq!(
            out.keyframes,
            vec![KeyframeRequest {
                track: key(),
                layer: Layer(2)
            }]
        );
        // until its keyframe arrives the subscriber stays on layer 0
        run(&mut r, &mut sim, 5, &mut out);
        assert_eq!(r.current_layer(SUB, key()), Some(Layer(0)));
        for p in sim.frame(true) {
            r.on_packet(&p, &mut out);
        }
        assert_eq!(r.current_layer(SUB, key()), Some(Layer(2)));
        run(&mut r, &mut sim, 40, &mut out);

        // congestion: down to the middle layer (it sends ~400k; 450k fits)
        r.set_estimate(SUB, 450_000, sim.now(), &mut out);
        assert_eq!(r.target_layer(SUB, key()), Some(Layer(1)));
        run(&mut r, &mut sim, 10, &mut out);
        assert_eq!(
            r.current_layer(SUB, key()),
            Some(Layer(2)),
            "no switch without a keyframe"
        );
        for p in sim.frame(true) {
            r.on_packet(&p, &mut out);
        }
        run(&mut r, &mut sim, 10, &mut out);
        assert_eq!(r.current_layer(SUB, key()), Some(Layer(1)));

        // everything forwarded is one continuous stream
        assert_continuous(&out.forward);
    }

    #[test]
    fn a_modest_rise_does_not_upgrade_without_headroom() {
        let mut r = room();
        let mut sim = Sim::new(30);
        let mut out = Outputs::default();
        r.subscribe(SUB, key(), Mid::from("o1"), sim.now(), &mut out);
        run(&mut r, &mut sim, 60, &mut out);
        // layer 1 sends ~400 kbit/s: 420k is not 15 % above it
        r.set_estimate(SUB, 420_000, sim.now(), &mut out);
        assert_eq!(r.target_layer(SUB, key()), Some(Layer(0)));
        r.set_estimate(SUB, 480_000, sim.now(), &mut out);
        assert_eq!(r.target_layer(SUB, key()), Some(Layer(1)));
        // a cap from the client wins over bandwidth
        r.set_estimate(SUB, 5_000_000, sim.now(), &mut out);
        r.set_max_layer(SUB, Some(Layer(1)), sim.now(), &mut out);
        assert_eq!(r.target_layer(SUB, key()), Some(Layer(1)));
    }

    #[test]
    fn a_layer_the_publisher_does_not_send_is_never_chosen() {
        let mut r = room();
        let t0 = Instant::now();
        let mut out = Outputs::default();
        r.subscribe(SUB, key(), Mid::from("o1"), t0, &mut out);
        // only layers 0 and 1 send (a browser dropped its full-resolution layer)
        for f in 0..60u64 {
            for l in 0..2u8 {
                let p = Incoming {
                    track: key(),
                    layer: Layer(l),
                    seq: 1000 * l as u64 + f,
                    ts: f * 3000,
                    keyframe: f == 0,
                    picture_id: Some(f as u16),
                    bytes: (l as usize + 1) * 1000,
                    at: t0 + Duration::from_millis(f * 33),
                };
                r.on_packet(&p, &mut out);
            }
        }
        let now = t0 + Duration::from_millis(2000);
        r.set_estimate(SUB, 10_000_000, now, &mut out);
        assert_eq!(
            r.target_layer(SUB, key()),
            Some(Layer(1)),
            "the best layer actually sent"
        );
    }

    #[test]
    fn keyframe_requests_are_forwarded_for_the_layer_in_use_and_throttled() {
        let mut r = room();
        let mut sim = Sim::new(30);
        let mut out = Outputs::default();
        r.subscribe(SUB, key(), Mid::from("o1"), sim.now(), &mut out);
        run(&mut r, &mut sim, 40, &mut out);
        out.keyframes.clear();
        r.on_keyframe_request(SUB, Mid::from("o1"), sim.now(), &mut out);
        r.on_keyframe_request(SUB, Mid::from("o1"), sim.now(), &mut out);
        assert_eq!(
            out.keyframes,
            vec![KeyframeRequest {
                track: key(),
                layer: Layer(0)
            }],
            "once per 300 ms"
        );
        // the held-back request goes out with the first packet after the throttle
        let mut later = Outputs::default();
        run(&mut r, &mut sim, 12, &mut later);
        assert_eq!(
            later.keyframes,
            vec![KeyframeRequest {
                track: key(),
                layer: Layer(0)
            }]
        );
        // nothing more is pending
        let mut after = Outputs::default();
        run(&mut r, &mut sim, 30, &mut after);
        assert!(after.keyframes.is_empty());
        // a request on an unknown m-line is ignored
        r.on_keyframe_request(
            SUB,
            Mid::from("zz"),
            sim.now() + Duration::from_secs(1),
            &mut after,
        );
        assert!(after.keyframes.is_empty());
    }

    #[test]
    fn each_subscriber_gets_its_own_rewriting() {
        let mut r = room();
        let mut sim = Sim::new(30);
        let mut out = Outputs::default();
        let (a, b) = (PeerId(20), PeerId(21));
        r.subscribe(a, key(), Mid::from("x"), sim.now(), &mut out);
        run(&mut r, &mut sim, 40, &mut out);
        r.subscribe(b, key(), Mid::from("y"), sim.now(), &mut out);
        run(&mut r, &mut sim, 40, &mut out);
        let fa: Vec<Forward> = out
            .forward
            .iter()
            .filter(|f| f.subscriber == a)
            .cloned()
            .collect();
        let fb: Vec<Forward> = out
            .forward
            .iter()
            .filter(|f| f.subscriber == b)
            .cloned()
            .collect();
        assert!(fa.iter().all(|f| f.out_mid == Mid::from("x")));
        assert!(fb.iter().all(|f| f.out_mid == Mid::from("y")));
        assert_eq!(fb[0].seq, 1, "a late subscriber's stream also starts at 1");
        assert_continuous(&fa);
        assert_continuous(&fb);

        // a track's removal names its subscribers and stops forwarding
        let gone = r.remove_track(key());
        assert_eq!(gone.len(), 2);
        let before = out.forward.len();
        run(&mut r, &mut sim, 5, &mut out);
        assert_eq!(out.forward.len(), before);
    }

    #[test]
    fn audio_is_forwarded_from_the_first_packet_with_its_own_continuity() {
        let mut r = Room::default();
        let k = TrackKey {
            publisher: PUBLISHER,
            mid: Mid::from("a0"),
        };
        r.add_track(k, Kind::Audio, 48_000, 1);
        let mut out = Outputs::default();
        let t0 = Instant::now();
        r.subscribe(SUB, k, Mid::from("oa"), t0, &mut out);
        assert!(out.keyframes.is_empty(), "audio needs no keyframe");
        for i in 0..50u64 {
            let p = Incoming {
                track: k,
                layer: Layer(0),
                seq: 60_000 + i,
                ts: 4_000_000_000 + i * 960,
                keyframe: true,
                picture_id: None,
                bytes: 100,
                at: t0 + Duration::from_millis(i * 20),
            };
            r.on_packet(&p, &mut out);
        }
        assert_eq!(out.forward.len(), 50);
        assert_eq!(out.forward[0].seq, 1);
        for w in out.forward.windows(2) {
            assert_eq!(w[1].seq, w[0].seq + 1);
            assert_eq!(w[1].ts.wrapping_sub(w[0].ts), 960);
        }
        // a subscriber that leaves stops receiving
        r.remove_subscriber(SUB);
        let n = out.forward.len();
        r.on_packet(
            &Incoming {
                track: k,
                layer: Layer(0),
                seq: 70_000,
                ts: 1,
                keyframe: true,
                picture_id: None,
                bytes: 1,
                at: t0,
            },
            &mut out,
        );
        assert_eq!(out.forward.len(), n);
    }
}
