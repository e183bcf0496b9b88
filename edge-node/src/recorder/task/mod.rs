//! One session's recorder: follows the session's events (scene, layout,
//! slide, whiteboard, consent, kill switch) and its media tap, drives the
//! program, and hands closed segments to an uploader that logs them in
//! order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use gstreamer as gst;
use protocol::control::Audience;
use protocol::event::TrackSource;
use protocol::state::SessionState;
use protocol::*;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::captions::{CaptionSession, log_captions};
use super::layout::{self, Source};
use super::pipeline::{Codec, Note, Program, STILL_FPS};
use super::{Prepared, Recorders, Resume, object_key, spool};
use crate::runtime::registry::Registry;
use crate::runtime::session::SessionHandle;
use crate::sfu::{TapCodec, TapMsg};

mod public;
mod store;
pub(super) use store::salvage;
use store::*;
pub use store::{Manifest, ManifestAudio, ManifestGap, ManifestSegment};

/// Camera pads in the program (a 2x2 grid at most).
const CAMERA_SLOTS: usize = 4;
/// Decoded slide pages kept (about 1.4 MB each).
const SLIDE_CACHE: usize = 24;
/// How often a stopped recorder (full disk, failed pipeline) tries again.
const REARM_EVERY: Duration = Duration::from_secs(5);

pub enum Control {
    Finalize {
        reply: oneshot::Sender<Result<(), String>>,
    },
    Discard,
}

pub(super) struct Context {
    pub recorders: Recorders,
    pub handle: SessionHandle,
    pub registry: Registry,
    pub spool: PathBuf,
}

/// A finished segment's record, kept beside it in the spool (so a restart
/// can log segments that closed but were not yet logged).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sidecar {
    index: u32,
    start_ms: u64,
    end_ms: u64,
}

/// A participant's raw audio file and where it starts on the media clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RawAudio {
    participant_id: ParticipantId,
    start_ms: u64,
    file: String,
}

enum Job {
    Segment {
        part: PathBuf,
        meta: Sidecar,
    },
    Finalize {
        reply: Option<oneshot::Sender<Result<(), String>>>,
    },
}

struct Run {
    program: Program,
    started_at: DateTime<Utc>,
    /// Media time of this run's running time 0.
    offset_ms: u64,
    notes: Pin<Box<dyn Stream<Item = Note> + Send>>,
    finishing: bool,
    /// The public program (staff, slides, screen, whiteboard only), while
    /// a public destination is attached.
    public: Option<Program>,
}

struct TrackInfo {
    participant: ParticipantId,
    source: TrackSource,
    codec: TapCodec,
    input: Option<u64>,
    slot: Option<u8>,
    /// Its input in the public program.
    public_input: Option<u64>,
}

/// Why no run is recording right now.
#[derive(Debug, Clone, PartialEq)]
enum Stopped {
    KillSwitch,
    Failed(String),
}

struct Task {
    ctx: Context,
    state: SessionState,
    armed_at: DateTime<Utc>,
    run: Option<Run>,
    stopped: Option<Stopped>,
    tracks: HashMap<u32, TrackInfo>,
    opened: HashMap<PathBuf, u64>,
    next_index: u32,
    recorded_to_ms: u64,
    jobs: mpsc::UnboundedSender<Job>,
    slides: HashMap<(DeckId, u32), gst::Buffer>,
    fetching: JoinSet<((DeckId, u32), Option<gst::Buffer>)>,
    wanted_slide: Option<((DeckId, u32), u64)>,
    finalize: Option<oneshot::Sender<Result<(), String>>>,
    audio_n: u32,
    /// The session's caption thread (dropped with the task, which ends it).
    captions: Option<CaptionSession>,
    /// Whether a public destination is attached (then the public program runs).
    wants_public: tokio::sync::watch::Receiver<bool>,
}

pub(super) async fn run(
    ctx: Context,
    prepared: Prepared,
    resume: Option<Resume>,
    control: mpsc::Receiver<Control>,
    media: mpsc::Receiver<TapMsg>,
) {
    let span = tracing::info_span!("recorder", session_id = %ctx.handle.id);
    run_inner(ctx, prepared, resume, control, media)
        .instrument(span)
        .await
}

async fn run_inner(
    ctx: Context,
    prepared: Prepared,
    resume: Option<Resume>,
    mut control: mpsc::Receiver<Control>,
    mut media: mpsc::Receiver<TapMsg>,
) {
    let spool = ctx.spool.join(ctx.handle.id.to_string());
    let ctx = Context { spool, ..ctx };
    let sub = match ctx.handle.subscribe(Seq(u64::MAX)).await {
        Ok(s) => s,
        Err(_) => {
            prepared.program.stop();
            return;
        }
    };
    let mut live = sub.live;
    let state = sub.state;
    let armed_at = resume
        .as_ref()
        .map(|r| r.armed_at)
        .unwrap_or(prepared.started_at);
    let (jobs, job_rx) = mpsc::unbounded_channel();
    tokio::spawn(
        uploader(
            ctx.recorders.clone(),
            ctx.handle.clone(),
            ctx.registry.clone(),
            ctx.spool.clone(),
            job_rx,
        )
        .in_current_span(),
    );
    // live captions: a thread of their own, logged in order by a task here
    let (caption_tx, caption_rx) = mpsc::channel(64);
    let captions = ctx.recorders.captions().start(ctx.handle.id, caption_tx);
    if captions.is_some() {
        tokio::spawn(log_captions(ctx.handle.clone(), caption_rx).in_current_span());
    }
    let wants_public = ctx.recorders.fanout().wants_public(ctx.handle.id);
    let mut t = Task {
        wants_public,
        captions,
        recorded_to_ms: resume.as_ref().map(|r| r.recorded_to_ms).unwrap_or(0),
        ctx,
        state,
        armed_at,
        run: None,
        stopped: None,
        tracks: HashMap::new(),
        opened: HashMap::new(),
        next_index: prepared.first_index,
        jobs,
        slides: HashMap::new(),
        fetching: JoinSet::new(),
        wanted_slide: None,
        finalize: None,
        audio_n: 0,
    };
    let reason = resume.map(|r| r.reason);
    if !t.start_run(prepared, reason).await {
        return;
    }
    let mut stills = tokio::time::interval(Duration::from_millis(1000 / STILL_FPS));
    stills.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut rearm = tokio::time::interval(REARM_EVERY);
    rearm.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let notes = async {
            match t.run.as_mut() {
                Some(r) => r.notes.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            c = control.recv() => match c {
                Some(Control::Finalize { reply }) => {
                    t.finalize = Some(reply);
                    if !t.finish_run() {
                        t.send_finalize();
                        break;
                    }
                }
                Some(Control::Discard) | None => {
                    if let Some(r) = t.drop_run() {
                        r.program.stop();
                    }
                    break;
                }
            },
            ev = live.recv() => match ev {
                Ok(fe) => {
                    let _ = t.state.apply(&fe.event);
                    t.on_event(&fe.event);
                    if !t.state.is_live() {
                        // ended without finalize (aborted): nothing more can be logged
                        if let Some(r) = t.drop_run() {
                            r.program.stop();
                        }
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "recorder fell behind the session feed; resyncing");
                    if let Ok(s) = t.ctx.handle.state().await {
                        t.state = s;
                        t.resync();
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    if let Some(r) = t.drop_run() {
                        r.program.stop();
                    }
                    break;
                }
            },
            m = media.recv() => if let Some(m) = m { t.on_media(m) },
            n = notes => match n {
                Some(n) => if t.on_note(n) { break },
                None => { t.run_failed("the pipeline's bus closed".into()).await; }
            },
            _ = stills.tick() => {
                if let Some(r) = t.run.as_mut().filter(|r| !r.finishing) {
                    r.program.tick_stills();
                    if let Some(p) = r.public.as_mut() {
                        p.tick_stills();
                    }
                }
            },
            Some(done) = t.fetching.join_next() => {
                if let Ok((key, Some(buf))) = done {
                    t.slide_ready(key, buf);
                }
            },
            _ = rearm.tick() => {
                t.check_space().await;
                t.maybe_rearm().await;
            }
            Ok(()) = t.wants_public.changed() => t.sync_public(),
        }
    }
    if let Some(r) = t.drop_run() {
        r.program.stop();
    }
    t.ctx.recorders.forget(t.ctx.handle.id);
    tracing::info!("recorder stopped");
}

/// Logs one recording event as the platform.
async fn log(handle: &SessionHandle, event: EventBody) -> bool {
    let name = event.event_type();
    match handle
        .command(Actor::System, Command::System { event })
        .await
    {
        Ok(protocol::control::EdgeReply::Done { .. }) => true,
        Ok(other) => {
            tracing::warn!(event = name, reply = ?other, "recording event not logged");
            false
        }
        Err(_) => false,
    }
}

pub(super) async fn alert(handle: &SessionHandle, reason: String) {
    tracing::warn!(%reason, "recording alert");
    log(handle, EventBody::RecordingAlert { reason }).await;
}

fn video_codec(c: TapCodec) -> Codec {
    match c {
        TapCodec::Vp8 => Codec::Vp8,
        TapCodec::H264 => Codec::H264,
        TapCodec::Opus => Codec::Opus,
    }
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_milliseconds().max(0) as u64
}

impl Task {
    fn session(&self) -> SessionId {
        self.ctx.handle.id
    }

    /// Media time of an event.
    fn media_ms(&self, at: DateTime<Utc>) -> u64 {
        ms_between(self.armed_at, at)
    }

    /// Running time (of the current run) of a media time; `None` without a run.
    fn running_at(&self, media_ms: u64) -> Option<u64> {
        self.run
            .as_ref()
            .map(|r| media_ms.saturating_sub(r.offset_ms))
    }

    fn now_running(&self) -> Option<u64> {
        self.run.as_ref().map(|r| r.program.running_ms())
    }

    /// Makes a prepared program the current run: logs the gap before it
    /// (if any) and `recording.armed`, then brings it up to date.
    async fn start_run(&mut self, mut prepared: Prepared, gap_reason: Option<String>) -> bool {
        let offset_ms = ms_between(self.armed_at, prepared.started_at);
        if let Some(reason) = gap_reason {
            let gap = EventBody::RecordingGap {
                from_ms: self.recorded_to_ms,
                to_ms: offset_ms,
                reason,
            };
            log(&self.ctx.handle, gap).await;
        }
        let armed = EventBody::RecordingArmed {
            started_at: prepared.started_at,
            offset_ms,
        };
        if !log(&self.ctx.handle, armed).await {
            prepared.program.stop();
            return false;
        }
        let Some(notes) = prepared.program.notes() else {
            prepared.program.stop();
            return false;
        };
        tracing::info!(
            offset_ms,
            first_index = prepared.first_index,
            "recording armed"
        );
        if let Some(feed) = prepared.program.take_feed() {
            let tenant = self.state.tenant_id;
            let names = [
                protocol::subjects::program_track_name(tenant, self.session()),
                protocol::subjects::program_audio_track_name(tenant, self.session()),
            ];
            let uplink = self.ctx.recorders.uplink().clone();
            let sfu = self.ctx.recorders.sfu().clone();
            tokio::spawn(
                publish_program(uplink, sfu, self.session(), names, feed).in_current_span(),
            );
        }
        if let Some(c) = &self.captions {
            let (feed, end) = (c.feed(), c.feed());
            prepared.program.caption_audio(
                move |running_ns, pcm| feed.push(offset_ms, running_ns, pcm),
                move || end.flush(),
            );
        }
        self.next_index = prepared.first_index;
        self.stopped = None;
        self.ctx.recorders.fanout().set_feed(
            self.session(),
            Audience::Private,
            Some(prepared.program.stream()),
        );
        self.run = Some(Run {
            program: prepared.program,
            started_at: prepared.started_at,
            offset_ms,
            notes: Box::pin(notes),
            finishing: false,
            public: None,
        });
        self.sync_public();
        // media already flowing joins the new run
        let ids: Vec<u32> = self.tracks.keys().copied().collect();
        for id in ids {
            if let Some(t) = self.tracks.get_mut(&id) {
                t.input = None;
                t.slot = None;
                t.public_input = None;
            }
            self.admit(id);
        }
        self.resync();
        true
    }

    /// Applies the whole studio state now (after a start or a resync).
    fn resync(&mut self) {
        let Some(now) = self.now_running() else {
            return;
        };
        self.relayout_at(now);
        if let Some(s) = self.state.slide.clone() {
            self.show_slide((s.deck_id, s.index), now);
        }
        let frame = super::raster::whiteboard(&self.state.strokes);
        if let Some(r) = self.run.as_mut() {
            if let Some(p) = r.public.as_mut() {
                let at = p.running_ms();
                p.set_whiteboard(frame.clone(), at);
            }
            r.program.set_whiteboard(frame, now);
        }
    }

    fn on_event(&mut self, ev: &Envelope) {
        if let EventBody::KillSwitchChanged {
            switch: event::KillSwitch::Multistream,
            engaged,
        } = ev.body
        {
            self.ctx.recorders.fanout().kill(self.session(), engaged);
            self.sync_public();
        }
        let at = self.media_ms(ev.occurred_at);
        let Some(running) = self.running_at(at) else {
            if let EventBody::KillSwitchChanged {
                switch: event::KillSwitch::Recording,
                engaged: false,
            } = ev.body
            {
                // picked up by the next re-arm tick
            }
            return;
        };
        tracing::trace!(event = ev.body.event_type(), running, "studio event");
        match &ev.body {
            EventBody::SceneChanged { .. } | EventBody::LayoutChanged { .. } => {
                self.relayout_at(running)
            }
            EventBody::SlideChanged { deck_id, index, .. } => {
                self.show_slide((*deck_id, *index), running);
                self.relayout_at(running);
            }
            EventBody::WhiteboardStroke { .. } | EventBody::WhiteboardCleared {} => {
                let frame = super::raster::whiteboard(&self.state.strokes);
                if let Some(r) = self.run.as_mut() {
                    if let Some(p) = r.public.as_mut() {
                        let at = p.running_ms();
                        p.set_whiteboard(frame.clone(), at);
                    }
                    r.program.set_whiteboard(frame, running);
                }
            }
            EventBody::ConsentChanged {
                participant_id,
                recording,
            } => {
                let ids: Vec<u32> = self
                    .tracks
                    .iter()
                    .filter(|(_, t)| t.participant == *participant_id)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    if *recording {
                        self.admit(id);
                    } else {
                        self.evict(id);
                    }
                }
                self.relayout_at(running);
            }
            EventBody::ParticipantJoined { .. } => {
                // tracks that arrived before their owner's join are admitted now
                let ids: Vec<u32> = self
                    .tracks
                    .iter()
                    .filter(|(_, t)| t.input.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.admit(id);
                }
                self.relayout_at(running);
            }
            EventBody::ParticipantLeft { .. } | EventBody::PermissionChanged { .. } => {
                self.relayout_at(running)
            }
            EventBody::KillSwitchChanged {
                switch: event::KillSwitch::Recording,
                engaged: true,
            } => {
                self.stopped = Some(Stopped::KillSwitch);
                self.finish_run();
            }
            _ => {}
        }
    }

    fn on_media(&mut self, m: TapMsg) {
        match m {
            TapMsg::Track {
                track,
                participant,
                source,
                codec,
            } => {
                tracing::debug!(track, %participant, ?source, ?codec, "tapped track");
                self.tracks.insert(
                    track,
                    TrackInfo {
                        participant,
                        source,
                        codec,
                        input: None,
                        slot: None,
                        public_input: None,
                    },
                );
                self.admit(track);
                if let Some(now) = self.now_running() {
                    self.relayout_at(now);
                }
            }
            TapMsg::Rtp { track, packet } => {
                let Some(r) = self.run.as_ref() else { return };
                let Some(t) = self.tracks.get(&track) else {
                    return;
                };
                if let (Some(p), Some(input)) = (r.public.as_ref(), t.public_input) {
                    p.push_rtp(input, packet.clone());
                }
                if let Some(input) = t.input {
                    r.program.push_rtp(input, packet);
                }
            }
            TapMsg::Ended { track } => {
                self.evict(track);
                self.tracks.remove(&track);
                if let Some(now) = self.now_running() {
                    self.relayout_at(now);
                }
            }
        }
    }

    /// Gives a track an input in the program, if its owner consents.
    fn admit(&mut self, id: u32) {
        let session = self.session();
        let Some(run) = self.run.as_mut().filter(|r| !r.finishing) else {
            return;
        };
        let Some(t) = self.tracks.get(&id) else {
            return;
        };
        if t.input.is_some() {
            return;
        }
        if !crate::policy::recorded(&self.state, t.participant) {
            return;
        }
        let used: Vec<u8> = self.tracks.values().filter_map(|t| t.slot).collect();
        let (source, slot) = match (t.codec, t.source) {
            (TapCodec::Opus, _) => (None, None),
            (_, TrackSource::Screen) => (Some(Source::Screen), None),
            _ => match (0..CAMERA_SLOTS as u8).find(|s| !used.contains(s)) {
                Some(s) => (Some(Source::Camera(s)), Some(s)),
                None => return,
            },
        };
        let codec = match t.codec {
            TapCodec::Vp8 => Codec::Vp8,
            TapCodec::H264 => Codec::H264,
            TapCodec::Opus => Codec::Opus,
        };
        let raw = (codec == Codec::Opus).then(|| {
            self.audio_n += 1;
            let dir = self.ctx.spool.join("audio");
            let _ = std::fs::create_dir_all(&dir);
            let name = format!("{}-{}.ogg", t.participant, self.audio_n);
            let start_ms = run.offset_ms + run.program.running_ms();
            let side = RawAudio {
                participant_id: t.participant,
                start_ms,
                file: name.clone(),
            };
            if let Ok(json) = serde_json::to_vec(&side) {
                let _ = std::fs::write(dir.join(format!("{name}.json")), json);
            }
            dir.join(name)
        });
        let sfu = self.ctx.recorders.inner.sfu.clone();
        let input = run.program.add_input(
            codec,
            t.codec.payload_type(),
            source,
            raw.as_deref(),
            move || sfu.tap_keyframe(session, id),
        );
        match input {
            Ok(input) => {
                if let Some(t) = self.tracks.get_mut(&id) {
                    t.input = Some(input);
                    t.slot = slot;
                }
                if codec != Codec::Opus {
                    self.ctx.recorders.inner.sfu.tap_keyframe(session, id);
                }
                self.admit_public(id);
            }
            Err(e) => tracing::warn!(track = id, error = %e, "track not recorded"),
        }
    }

    /// Takes the current run away (it ended or failed): its programs stop
    /// feeding the destinations. The caller stops the recording program.
    fn drop_run(&mut self) -> Option<Run> {
        self.stop_public();
        self.ctx
            .recorders
            .fanout()
            .set_feed(self.session(), Audience::Private, None);
        self.run.take()
    }

    /// Takes a track out of the program at once (consent withdrawn, ended).
    fn evict(&mut self, id: u32) {
        let Some(t) = self.tracks.get_mut(&id) else {
            return;
        };
        t.slot = None;
        let (input, public_input) = (t.input.take(), t.public_input.take());
        let Some(r) = self.run.as_mut() else { return };
        if let Some(input) = input {
            r.program.remove_input(input);
        }
        if let (Some(input), Some(p)) = (public_input, r.public.as_mut()) {
            p.remove_input(input);
        }
    }

    fn relayout_at(&mut self, running_ms: u64) {
        let Some(run) = self.run.as_ref() else { return };
        let mut cams: Vec<(bool, u8)> = self
            .tracks
            .values()
            .filter(|t| t.input.is_some())
            .filter_map(|t| t.slot.map(|s| (t.participant, s)))
            .map(|(p, s)| {
                let teacher = self
                    .state
                    .participants
                    .get(&p)
                    .is_some_and(|p| p.role == Role::Teacher);
                (!teacher, s)
            })
            .collect();
        cams.sort();
        let inputs = layout::Inputs {
            cameras: cams.iter().map(|(_, s)| *s).collect(),
            screen: self.tracks.values().any(|t| {
                t.input.is_some() && t.source == TrackSource::Screen && t.codec != TapCodec::Opus
            }),
            slide: self.state.slide.is_some(),
        };
        let mut all: Vec<Source> = cams.iter().map(|(_, s)| Source::Camera(*s)).collect();
        all.extend([Source::Screen, Source::Slide, Source::Whiteboard]);
        let places = layout::places(self.state.scene, self.state.layout, &inputs, &all);
        tracing::debug!(running_ms, scene = ?self.state.scene, layout = ?self.state.layout, ?places, "layout");
        run.program.set_layout(running_ms, places);
        if let Some(p) = run.public.as_ref() {
            // the public program: only what it has inputs for
            let public_cams: Vec<u8> = cams
                .iter()
                .map(|(_, s)| *s)
                .filter(|s| {
                    self.tracks
                        .values()
                        .any(|t| t.slot == Some(*s) && t.public_input.is_some())
                })
                .collect();
            let inputs = layout::Inputs {
                cameras: public_cams,
                screen: self.tracks.values().any(|t| {
                    t.public_input.is_some()
                        && t.source == TrackSource::Screen
                        && t.codec != TapCodec::Opus
                }),
                slide: self.state.slide.is_some(),
            };
            let places = layout::places(self.state.scene, self.state.layout, &inputs, &all);
            p.set_layout(p.running_ms(), places);
        }
    }

    fn show_slide(&mut self, key: (DeckId, u32), running_ms: u64) {
        tracing::debug!(deck_id = %key.0, page = key.1, running_ms, cached = self.slides.contains_key(&key), "show slide");
        if let Some(buf) = self.slides.get(&key).cloned() {
            if let Some(r) = self.run.as_mut() {
                if let Some(p) = r.public.as_mut() {
                    let at = p.running_ms();
                    p.set_slide(buf.clone(), at);
                }
                r.program.set_slide(buf, running_ms);
            }
            self.wanted_slide = None;
        } else {
            self.wanted_slide = Some((key, running_ms));
            self.fetch_slide(key);
        }
        // the next pages are likely next
        for i in 1..=2 {
            self.fetch_slide((key.0, key.1 + i));
        }
    }

    fn fetch_slide(&mut self, key: (DeckId, u32)) {
        if self.slides.contains_key(&key) {
            return;
        }
        if key.1
            >= self
                .ctx
                .registry
                .deck_pages(self.state.tenant_id, key.0)
                .unwrap_or(u32::MAX)
        {
            return;
        }
        let Some(url) = self
            .ctx
            .registry
            .deck_page_url(self.state.tenant_id, key.0, key.1)
        else {
            tracing::warn!(deck_id = %key.0, page = key.1, "no URL for a slide page; the program shows none");
            return;
        };
        if self.slides.len() >= SLIDE_CACHE {
            let current = self.state.slide.as_ref().map(|s| (s.deck_id, s.index));
            let drop: Vec<(DeckId, u32)> = self
                .slides
                .keys()
                .filter(|k| Some(**k) != current)
                .copied()
                .take(4)
                .collect();
            for k in drop {
                self.slides.remove(&k);
            }
        }
        let http = self.ctx.recorders.inner.http.clone();
        let dir = self.ctx.spool.join("slides");
        self.fetching.spawn(async move {
            let got = fetch_page(&http, &url, &dir, key).await;
            if let Err(e) = &got {
                tracing::warn!(deck_id = %key.0, page = key.1, error = %e, "slide page not fetched");
            }
            (key, got.ok())
        });
    }

    fn slide_ready(&mut self, key: (DeckId, u32), buf: gst::Buffer) {
        tracing::debug!(deck_id = %key.0, page = key.1, "slide page ready");
        self.slides.insert(key, buf.clone());
        if let Some((want, at)) = self.wanted_slide
            && want == key
        {
            self.wanted_slide = None;
            // late: show it from now (a frame the compositor has not made yet)
            let now = self.now_running().unwrap_or(0).saturating_sub(50);
            if let Some(r) = self.run.as_mut() {
                if let Some(p) = r.public.as_mut() {
                    let at = p.running_ms().saturating_sub(50);
                    p.set_slide(buf.clone(), at);
                }
                r.program.set_slide(buf, at.max(now));
            }
        }
    }

    /// Bus notes. Returns true when the task is done.
    fn on_note(&mut self, n: Note) -> bool {
        match n {
            Note::SegmentOpened { path, running_ms } => {
                if let Some(i) = index_of(&path) {
                    self.next_index = self.next_index.max(i + 1);
                }
                self.opened.insert(path, running_ms);
            }
            Note::SegmentClosed { path, running_ms } => {
                let Some(run) = self.run.as_ref() else {
                    return false;
                };
                let start = self.opened.remove(&path).unwrap_or(0);
                let Some(index) = index_of(&path) else {
                    return false;
                };
                let meta = Sidecar {
                    index,
                    start_ms: run.offset_ms + start,
                    end_ms: run.offset_ms + running_ms,
                };
                self.recorded_to_ms = self.recorded_to_ms.max(meta.end_ms);
                tracing::debug!(
                    index,
                    start_ms = meta.start_ms,
                    end_ms = meta.end_ms,
                    "segment closed"
                );
                let _ = self.jobs.send(Job::Segment { part: path, meta });
            }
            Note::InputError { input, message } => {
                let track = self
                    .tracks
                    .iter()
                    .find(|(_, t)| t.input == Some(input))
                    .map(|(id, _)| *id);
                tracing::warn!(input, ?track, error = %message, "a participant's media cannot be recorded; dropped from the program");
                if let Some(track) = track {
                    self.evict(track);
                    self.tracks.remove(&track);
                    if let Some(now) = self.now_running() {
                        self.relayout_at(now);
                    }
                }
            }
            Note::Eos => {
                if let Some(r) = self.drop_run() {
                    r.program.stop();
                    tracing::info!(recorded_to_ms = self.recorded_to_ms, run_started = %r.started_at, "recorder run ended");
                }
                if self.finalize.is_some() {
                    self.send_finalize();
                    return true;
                }
            }
            Note::Error(msg) => {
                let session = self.session();
                let handle = self.ctx.handle.clone();
                let free = super::free_mb(&self.ctx.spool);
                let reason = if free < self.ctx.recorders.config().min_free_mb
                    || msg.contains("space")
                    || msg.contains("write")
                {
                    format!("disk_full: the recording stopped ({free} MB free in the spool)")
                } else {
                    format!("recorder_failed: {msg}")
                };
                tracing::error!(session_id = %session, error = %msg, "recording pipeline failed");
                if let Some(r) = self.drop_run() {
                    r.program.stop();
                }
                self.drop_open_parts();
                self.stopped = Some(Stopped::Failed(reason.clone()));
                tokio::spawn(async move { alert(&handle, reason).await });
                if self.finalize.is_some() {
                    self.send_finalize();
                    return true;
                }
            }
        }
        false
    }

    async fn run_failed(&mut self, why: String) {
        if let Some(r) = self.drop_run() {
            r.program.stop();
        }
        self.drop_open_parts();
        self.stopped = Some(Stopped::Failed(why.clone()));
        alert(&self.ctx.handle, why).await;
    }

    /// Segments that were open when a run failed are torn: the gap covers them.
    fn drop_open_parts(&mut self) {
        for (path, _) in self.opened.drain() {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Starts ending the current run. Returns false when there is none.
    fn finish_run(&mut self) -> bool {
        self.stop_public();
        match self.run.as_mut() {
            Some(r) if !r.finishing => {
                r.finishing = true;
                r.program.begin_finish();
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    fn send_finalize(&mut self) {
        let reply = self.finalize.take();
        let _ = self.jobs.send(Job::Finalize { reply });
    }

    /// Stops the run cleanly before the spool runs out: the open segment is
    /// closed and kept, the stop is an alert, and the class goes on.
    async fn check_space(&mut self) {
        let Some(r) = self.run.as_ref() else { return };
        if r.finishing {
            return;
        }
        let free = super::free_mb(&self.ctx.spool);
        let min = self.ctx.recorders.config().min_free_mb;
        if free >= min {
            return;
        }
        let reason = format!(
            "disk_full: the recording stopped ({free} MB free in the spool, {min} MB needed)"
        );
        tracing::error!(session_id = %self.session(), free_mb = free, min_mb = min, "spool nearly full; stopping the recording");
        self.stopped = Some(Stopped::Failed(reason.clone()));
        self.finish_run();
        alert(&self.ctx.handle, reason).await;
    }

    /// A stopped recorder starts again when it may (kill switch off) and can
    /// (disk space back).
    async fn maybe_rearm(&mut self) {
        if self.run.is_some() || self.finalize.is_some() || !self.state.is_live() {
            return;
        }
        let Some(stopped) = self.stopped.clone() else {
            return;
        };
        if self.state.kill_switches.recording {
            return;
        }
        let reason = match stopped {
            Stopped::KillSwitch => "kill_switch".to_string(),
            Stopped::Failed(r) => r.split(':').next().unwrap_or("recorder_failed").to_string(),
        };
        match self
            .ctx
            .recorders
            .prepare(self.session(), self.next_index)
            .await
        {
            Ok(p) => {
                if !self.start_run(p, Some(reason)).await {
                    tracing::warn!("re-armed recorder could not log; stopping it");
                }
            }
            Err(e) => tracing::debug!(error = %e, "recorder not re-armed yet"),
        }
    }
}
