//! A WebRTC client on str0m for tests and load: a publisher sending
//! synthetic VP8 (optionally simulcast) and Opus, or real media (a VP8
//! clip, speech as Opus packets at a chosen instant), or a subscriber counting
//! the frames it receives. Each client has its own UDP socket (the SFU tells
//! peers apart by address) and speaks WHIP/WHEP to the edge, answering the
//! edge's renegotiation offers on its data channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

#[derive(Debug, Default, Clone)]
pub struct ClientStats {
    pub connected: bool,
    pub connected_at: Option<Instant>,
    pub disconnected: bool,
    /// frames (MediaData) received per mid, with their kind
    pub frames: HashMap<String, (MediaKind, u64)>,
    pub keyframes: u64,
    pub first_video_frame: Option<Instant>,
    /// The first frame a decoder can start from.
    pub first_keyframe: Option<Instant>,
    pub bytes: u64,
    /// offers received on the data channel (renegotiations)
    pub offers: u64,
    pub frames_sent: u64,
    /// rids on which frames arrived (for simulcast checks)
    pub rids_seen: HashMap<String, u64>,
    /// a keyframe was asked for (the next video frame will be one)
    pub keyframe_requested: bool,
    pub keyframes_sent: u64,
    /// States the edge announced for the class's media upstream
    /// (`reconnecting`, `live`), in order.
    pub upstream: Vec<String>,
    /// Sender-to-here latency of synthetic video frames (ms), from the
    /// send time the publisher stamps into each frame.
    pub latencies_ms: Vec<f64>,
    /// When the first packet of `PublishOptions::audio_clip` went out.
    pub audio_clip_started_at: Option<std::time::SystemTime>,
    /// When its last packet went out.
    pub audio_clip_ended_at: Option<std::time::SystemTime>,
}

/// Marks a synthetic frame that carries its send time (µs since the epoch).
const STAMP: &[u8; 2] = b"TS";

/// A 20 ms Opus frame of silence (CELT, fullband), as WebRTC stacks send.
const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

fn epoch_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl ClientStats {
    pub fn video_frames(&self) -> u64 {
        self.frames
            .values()
            .filter(|(k, _)| *k == MediaKind::Video)
            .map(|(_, n)| n)
            .sum()
    }
    pub fn audio_frames(&self) -> u64 {
        self.frames
            .values()
            .filter(|(k, _)| *k == MediaKind::Audio)
            .map(|(_, n)| n)
            .sum()
    }
    pub fn video_tracks(&self) -> usize {
        self.frames
            .values()
            .filter(|(k, n)| *k == MediaKind::Video && *n > 0)
            .count()
    }
}

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub video: bool,
    pub audio: bool,
    pub simulcast: bool,
    /// Video bitrate of the top layer (bits/s).
    pub video_bps: u64,
    pub fps: u32,
    /// A keyframe every this many frames.
    pub gop: u32,
    /// Real VP8 frames to send in a loop (first one a keyframe) instead of
    /// synthetic payloads: what a decoder downstream must accept.
    pub clip: Option<Arc<Vec<Vec<u8>>>>,
    /// Real Opus packets (20 ms each, e.g. `media_check::speech_clip`) sent
    /// once, in real time, instead of the synthetic audio; Opus silence
    /// before and after.
    pub audio_clip: Option<Arc<Vec<Vec<u8>>>>,
    /// The clip starts at this instant (silence until then), or as soon as
    /// the connection is up if that is later. The instant it actually
    /// started is `ClientStats::audio_clip_started_at`.
    pub audio_clip_start: Option<std::time::SystemTime>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            video: true,
            audio: true,
            simulcast: false,
            video_bps: 500_000,
            fps: 30,
            gop: 60,
            clip: None,
            audio_clip: None,
            audio_clip_start: None,
        }
    }
}

/// A running client; dropping it (or `stop`) ends its task.
pub struct Client {
    pub stats: Arc<Mutex<ClientStats>>,
    pub location: String,
    pub started: Instant,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Client {
    pub fn snapshot(&self) -> ClientStats {
        self.stats.lock().unwrap().clone()
    }

    /// Stops the media task abruptly (like a crashed client: no DELETE).
    pub fn vanish(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.stop.take();
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

#[derive(Debug)]
pub enum SignalError {
    Status(u16, String),
    Other(String),
}

impl std::fmt::Display for SignalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignalError::Status(s, b) => write!(f, "HTTP {s}: {b}"),
            SignalError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SignalError {}

/// Where and how to send the offer.
#[derive(Debug, Clone)]
pub enum Signal {
    /// The edge: WHIP to publish, WHEP to subscribe (SDP over HTTP).
    Edge {
        url: String,
        session: String,
        token: String,
    },
    /// str0m's `chat` example (the baseline): JSON offer/answer over HTTPS.
    Chat { url: String },
}

async fn signal(
    sig: &Signal,
    publish: bool,
    offer: &SdpOffer,
) -> Result<(SdpAnswer, String), SignalError> {
    match sig {
        Signal::Edge {
            url,
            session,
            token,
        } => {
            let kind = if publish { "whip" } else { "whep" };
            post_offer(&format!("{url}/{kind}/{session}"), token, offer).await
        }
        Signal::Chat { url } => {
            let http = reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .map_err(|e| SignalError::Other(e.to_string()))?;
            let body = serde_json::json!({ "type": "offer", "sdp": offer.to_sdp_string() });
            let resp = http
                .post(format!("{url}/start"))
                .json(&body)
                .send()
                .await
                .map_err(|e| SignalError::Other(e.to_string()))?;
            let status = resp.status().as_u16();
            let v: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| SignalError::Other(e.to_string()))?;
            if status != 200 {
                return Err(SignalError::Status(status, v.to_string()));
            }
            let sdp = v["sdp"]
                .as_str()
                .ok_or_else(|| SignalError::Other("no sdp in answer".into()))?;
            let answer =
                SdpAnswer::from_sdp_string(sdp).map_err(|e| SignalError::Other(e.to_string()))?;
            Ok((answer, String::new()))
        }
    }
}

async fn socket_on(ip: std::net::IpAddr) -> std::io::Result<(UdpSocket, SocketAddr)> {
    let s = UdpSocket::bind((ip, 0)).await?;
    let a = s.local_addr()?;
    Ok((s, a))
}

/// Publishes synthetic camera (VP8) and microphone (Opus) media via WHIP.
pub async fn publish(
    edge_url: &str,
    session: &str,
    token: &str,
    opts: PublishOptions,
) -> Result<Client, SignalError> {
    let sig = Signal::Edge {
        url: edge_url.to_owned(),
        session: session.to_owned(),
        token: token.to_owned(),
    };
    publish_via(&sig, std::net::IpAddr::from([127, 0, 0, 1]), opts).await
}

/// Subscribes to a session via WHEP.
pub async fn subscribe(edge_url: &str, session: &str, token: &str) -> Result<Client, SignalError> {
    let sig = Signal::Edge {
        url: edge_url.to_owned(),
        session: session.to_owned(),
        token: token.to_owned(),
    };
    subscribe_via(&sig, std::net::IpAddr::from([127, 0, 0, 1])).await
}

async fn post_offer(
    url: &str,
    token: &str,
    offer: &SdpOffer,
) -> Result<(SdpAnswer, String), SignalError> {
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/sdp")
        .body(offer.to_sdp_string())
        .send()
        .await
        .map_err(|e| SignalError::Other(e.to_string()))?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp
        .text()
        .await
        .map_err(|e| SignalError::Other(e.to_string()))?;
    if status != 201 {
        return Err(SignalError::Status(status, body));
    }
    let answer =
        SdpAnswer::from_sdp_string(&body).map_err(|e| SignalError::Other(e.to_string()))?;
    Ok((answer, location))
}

fn new_rtc(now: Instant) -> Rtc {
    Rtc::builder()
        .clear_codecs()
        .enable_vp8(true)
        .enable_opus(true, false)
        .enable_bwe(Some(str0m::bwe::Bitrate::kbps(1000)))
        .build(now)
}

/// Publishes through any signaling, from a socket on `ip`.
pub async fn publish_via(
    sig: &Signal,
    ip: std::net::IpAddr,
    opts: PublishOptions,
) -> Result<Client, SignalError> {
    let started = Instant::now();
    let (sock, local) = socket_on(ip)
        .await
        .map_err(|e| SignalError::Other(e.to_string()))?;
    let mut rtc = new_rtc(started);
    rtc.add_local_candidate(
        Candidate::host(local, "udp").map_err(|e| SignalError::Other(e.to_string()))?,
    );
    let mut api = rtc.sdp_api();
    let video = opts.video.then(|| {
        let sim = opts.simulcast.then(|| {
            let mut s = Simulcast::new();
            for rid in ["q", "h", "f"] {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        api.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some("cam".into()),
            Some("v".into()),
            sim,
        )
    });
    let audio = opts.audio.then(|| {
        api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some("cam".into()),
            Some("a".into()),
            None,
        )
    });
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| SignalError::Other("no offer".into()))?;
    let (answer, location) = signal(sig, true, &offer).await?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| SignalError::Other(e.to_string()))?;
    let stats = Arc::new(Mutex::new(ClientStats::default()));
    let (stop, stop_rx) = oneshot::channel();
    let task = tokio::spawn(run(
        rtc,
        sock,
        local,
        stats.clone(),
        stop_rx,
        Some((video, audio, opts)),
    ));
    Ok(Client {
        stats,
        location,
        started,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Subscribes to a session via WHEP: offers one video and one audio
/// receive slot and a data channel for the edge's renegotiations.
pub async fn subscribe_via(sig: &Signal, ip: std::net::IpAddr) -> Result<Client, SignalError> {
    let started = Instant::now();
    let (sock, local) = socket_on(ip)
        .await
        .map_err(|e| SignalError::Other(e.to_string()))?;
    let mut rtc = new_rtc(started);
    rtc.add_local_candidate(
        Candidate::host(local, "udp").map_err(|e| SignalError::Other(e.to_string()))?,
    );
    let mut api = rtc.sdp_api();
    // WHEP offers receive slots; the chat baseline sends its tracks by
    // renegotiation on the data channel only
    if matches!(sig, Signal::Edge { .. }) {
        api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    }
    api.add_channel("signal".into());
    let (offer, pending) = api
        .apply()
        .ok_or_else(|| SignalError::Other("no offer".into()))?;
    let (answer, location) = signal(sig, false, &offer).await?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| SignalError::Other(e.to_string()))?;
    let stats = Arc::new(Mutex::new(ClientStats::default()));
    let (stop, stop_rx) = oneshot::channel();
    let task = tokio::spawn(run(rtc, sock, local, stats.clone(), stop_rx, None));
    Ok(Client {
        stats,
        location,
        started,
        stop: Some(stop),
        task: Some(task),
    })
}

type Sending = (Option<Mid>, Option<Mid>, PublishOptions);

async fn run(
    mut rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    stats: Arc<Mutex<ClientStats>>,
    mut stop: oneshot::Receiver<()>,
    sending: Option<Sending>,
) {
    let mut buf = vec![0u8; 2000];
    let start = Instant::now();
    let mut next_video = start;
    let mut next_audio = start;
    let mut frame: u64 = 0;
    let mut audio_n: u64 = 0;
    let mut clip_at: usize = 0;
    // packets of the audio clip sent so far
    let mut audio_clip_at: usize = 0;
    let mut channel = None;
    loop {
        // drain
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = sock.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(e)) => on_event(&mut rtc, e, &stats, &mut channel),
                Err(_) => return,
            }
        };
        let connected = stats.lock().unwrap().connected;
        let mut wake = timeout;
        if let (Some((video, audio, opts)), true) = (&sending, connected) {
            // a kind not sent never falls due (else the loop spins)
            let far = Instant::now() + Duration::from_secs(3600);
            if video.is_none() {
                next_video = next_video.max(far);
            }
            if audio.is_none() {
                next_audio = next_audio.max(far);
            }
            wake = wake.min(next_video).min(next_audio);
            let now = Instant::now();
            if video.is_some() && now >= next_video {
                frame += 1;
                if opts.clip.is_some() {
                    // a keyframe request restarts the clip at its keyframe
                    if stats.lock().unwrap().keyframe_requested {
                        clip_at = 0;
                    }
                }
                let key = {
                    let mut s = stats.lock().unwrap();
                    let key = match &opts.clip {
                        Some(clip) => clip[clip_at % clip.len()]
                            .first()
                            .is_some_and(|b| b & 1 == 0),
                        None => frame % opts.gop as u64 == 1 || s.keyframe_requested,
                    };
                    s.keyframe_requested = false;
                    if key {
                        s.keyframes_sent += 1;
                    }
                    key
                };
                let layers: &[(&str, u64)] = if opts.simulcast {
                    &[("q", 4), ("h", 2), ("f", 1)]
                } else {
                    &[("", 1)]
                };
                for (rid, div) in layers {
                    let data = match &opts.clip {
                        Some(clip) => clip[clip_at % clip.len()].clone(),
                        None => {
                            let size =
                                (opts.video_bps / *div / 8 / opts.fps as u64).max(20) as usize;
                            let mut data = vec![0x5au8; size];
                            data[0] = if key { 0x10 } else { 0x11 };
                            if data.len() >= 12 {
                                // inside the frame, after the VP8 frame tag
                                data[2..4].copy_from_slice(STAMP);
                                data[4..12].copy_from_slice(&epoch_us().to_be_bytes());
                            }
                            data
                        }
                    };
                    let Some(mid) = video else { break };
                    let pt = rtc.writer(*mid).and_then(|w| {
                        w.payload_params()
                            .find(|p| p.spec().codec == Codec::Vp8)
                            .map(|p| p.pt())
                    });
                    if let (Some(pt), Some(w)) = (pt, rtc.writer(*mid)) {
                        let w = if rid.is_empty() {
                            w
                        } else {
                            w.rid((*rid).into())
                        };
                        let t = MediaTime::new(
                            frame * 90_000 / opts.fps as u64,
                            str0m::media::Frequency::NINETY_KHZ,
                        );
                        let _ = w.write(pt, now, t, data);
                    }
                }
                clip_at += 1;
                stats.lock().unwrap().frames_sent += 1;
                next_video += Duration::from_secs(1) / opts.fps;
            }
            if let (Some(mid), true) = (audio, now >= next_audio) {
                if opts.audio_clip.is_some() && now > next_audio + Duration::from_millis(100) {
                    // connecting took a while: real speech goes out in real
                    // time from here, not as a burst of the missed frames
                    next_audio = now;
                }
                audio_n += 1;
                let pt = rtc.writer(*mid).and_then(|w| {
                    w.payload_params()
                        .find(|p| p.spec().codec == Codec::Opus)
                        .map(|p| p.pt())
                });
                let data = match &opts.audio_clip {
                    None => vec![0xfcu8; 80],
                    Some(clip) => {
                        let due = opts
                            .audio_clip_start
                            .is_none_or(|at| std::time::SystemTime::now() >= at);
                        match clip.get(audio_clip_at) {
                            Some(p) if due => {
                                let mut s = stats.lock().unwrap();
                                let sent = std::time::SystemTime::now();
                                if audio_clip_at == 0 {
                                    s.audio_clip_started_at = Some(sent);
                                }
                                if audio_clip_at + 1 == clip.len() {
                                    s.audio_clip_ended_at = Some(sent);
                                }
                                audio_clip_at += 1;
                                p.clone()
                            }
                            _ => OPUS_SILENCE.to_vec(),
                        }
                    }
                };
                if let (Some(pt), Some(w)) = (pt, rtc.writer(*mid)) {
                    let t = MediaTime::new(audio_n * 960, str0m::media::Frequency::FORTY_EIGHT_KHZ);
                    let _ = w.write(pt, now, t, data);
                }
                next_audio += Duration::from_millis(20);
            }
            // writes need a drain before the next wait
            if Instant::now() >= next_video.min(next_audio) {
                continue;
            }
        }
        let sleep =
            tokio::time::sleep_until(tokio::time::Instant::from_std(wake.max(Instant::now())));
        tokio::select! {
            _ = &mut stop => {
                let _ = rtc.close();
                return;
            }
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, source)) = r
                    && let Ok(contents) = buf[..n].try_into() {
                        let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
                        if rtc.handle_input(input).is_err() {
                            return;
                        }
                    }
            }
            _ = sleep => {
                if rtc.handle_input(Input::Timeout(Instant::now())).is_err() {
                    return;
                }
            }
        }
    }
}

fn on_event(
    rtc: &mut Rtc,
    e: Event,
    stats: &Arc<Mutex<ClientStats>>,
    channel: &mut Option<str0m::channel::ChannelId>,
) {
    match e {
        Event::KeyframeRequest(_) => stats.lock().unwrap().keyframe_requested = true,
        Event::Connected => {
            let mut s = stats.lock().unwrap();
            s.connected = true;
            s.connected_at = Some(Instant::now());
        }
        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
            stats.lock().unwrap().disconnected = true
        }
        Event::MediaAdded(m) => {
            stats
                .lock()
                .unwrap()
                .frames
                .entry(m.mid.to_string())
                .or_insert((m.kind, 0));
        }
        Event::MediaData(d) => {
            let mut s = stats.lock().unwrap();
            let kind = if d.params.spec().codec.is_audio() {
                MediaKind::Audio
            } else {
                MediaKind::Video
            };
            let e = s.frames.entry(d.mid.to_string()).or_insert((kind, 0));
            e.1 += 1;
            s.bytes += d.data.len() as u64;
            // the frame as the publisher wrote it (str0m packetizes and
            // depacketizes around it)
            if kind == MediaKind::Video && std::env::var_os("RTC_CLIENT_DEBUG").is_some() {
                eprintln!("frame {:02x?}", &d.data[..d.data.len().min(14)]);
            }
            if kind == MediaKind::Video && d.data.len() >= 12 && &d.data[2..4] == STAMP {
                let sent = u64::from_be_bytes(d.data[4..12].try_into().unwrap_or_default());
                s.latencies_ms
                    .push(epoch_us().saturating_sub(sent) as f64 / 1000.0);
            }
            if kind == MediaKind::Video {
                if d.is_keyframe() {
                    s.keyframes += 1;
                    if s.first_keyframe.is_none() {
                        s.first_keyframe = Some(Instant::now());
                    }
                }
                if s.first_video_frame.is_none() {
                    s.first_video_frame = Some(Instant::now());
                }
            }
            if let Some(rid) = d.rid {
                *s.rids_seen.entry(rid.to_string()).or_default() += 1;
            }
        }
        Event::ChannelOpen(cid, _) => *channel = Some(cid),
        Event::ChannelData(d) => {
            let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&d.data) else {
                return;
            };
            if msg["type"] == "upstream" {
                if let Some(state) = msg["state"].as_str() {
                    stats.lock().unwrap().upstream.push(state.to_owned());
                }
                return;
            }
            if msg["type"] == "offer" {
                let Some(sdp) = msg["sdp"].as_str() else {
                    return;
                };
                let Ok(offer) = SdpOffer::from_sdp_string(sdp) else {
                    return;
                };
                if let Ok(answer) = rtc.sdp_api().accept_offer(offer) {
                    stats.lock().unwrap().offers += 1;
                    let reply =
                        serde_json::json!({ "type": "answer", "sdp": answer.to_sdp_string() })
                            .to_string();
                    if let Some(mut ch) = rtc.channel(d.id) {
                        let _ = ch.write(false, reply.as_bytes());
                    }
                }
            }
        }
        _ => {}
    }
}
