//! Live captions: the program's mix (what the recording hears, so only
//! consenting participants) at 16 kHz mono, transcribed on a thread of its
//! own per session by `asr::Captioner`, each caption a `caption.segment`
//! event with its times on the recording's media clock.
//!
//! Captions are best effort and never hold up the class or the recorder:
//! the model is loaded lazily, once per edge process, on a caption thread
//! (a missing model is one warning, then classes run without captions); the
//! pipeline hands audio over through a bounded channel and drops it, counted,
//! when the captioner falls behind; whisper runs on a `std::thread`, never
//! on a tokio worker, because it blocks for hundreds of milliseconds.
//!
//! Media time: the pipeline stamps the audio with its running time, and a
//! run starts at `offset_ms` on the media clock (after a crash or a full disk
//! the recorder re-arms later on the same clock). The captioner's own times
//! count the samples it was fed, so [`Timeline`] keeps an anchor at every
//! discontinuity (dropped audio, a new run) to map them back.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use protocol::SessionId;
use tokio::sync::mpsc;

/// The captioner's sample rate.
const RATE: u64 = asr::SAMPLE_RATE as u64;
/// Nanoseconds per sample at 16 kHz (exact).
const NS_PER_SAMPLE: u64 = 1_000_000_000 / RATE;
/// Audio waiting for the captioner, in 10 ms buffers (the mixer's): 20 s.
/// More than that and the captioner is hopelessly behind: drop.
const BACKLOG_BUFFERS: usize = 2_000;
/// A jump in the audio's timestamps bigger than this is a discontinuity.
const JUMP_NS: u64 = 20_000_000;
/// Dropped audio is reported at most this often.
const DROP_REPORT_EVERY: Duration = Duration::from_secs(10);
/// How often an idle caption thread looks whether its session ended.
const IDLE_CHECK: Duration = Duration::from_millis(500);
/// The caption thread's nice value: whisper (and the threads it starts,
/// which inherit it) yields the CPU to the recorder and the SFU.
const NICE: libc::c_int = 10;

#[derive(Debug, Clone)]
pub struct CaptionConfig {
    pub enabled: bool,
    /// The whisper.cpp model (`ggml-tiny.en.bin`).
    pub model: PathBuf,
}

/// The edge's captioning: its config and the model, loaded at most once.
#[derive(Clone)]
pub struct Captions {
    inner: Arc<Inner>,
}

struct Inner {
    config: CaptionConfig,
    /// `Some(None)`: the load was tried and failed (warned once).
    model: OnceLock<Option<Arc<asr::Model>>>,
}

/// One caption, ready to log: times on the media clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

enum Audio {
    /// 16 kHz mono PCM starting at `media_ns` on the media clock.
    Pcm { media_ns: u64, pcm: Vec<f32> },
    /// A run's audio ended (EOS): transcribe what is buffered.
    Flush,
}

/// Where a session's program audio goes: cheap to clone, never blocks.
#[derive(Clone)]
pub struct CaptionFeed {
    tx: SyncSender<Audio>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Samples dropped because the captioner was behind.
    dropped: AtomicU64,
    /// The session's recorder is gone: finish and stop.
    closed: AtomicBool,
}

impl CaptionFeed {
    /// Hands over one buffer of a run's audio (`running_ns`: the pipeline's
    /// running time of its first sample; `offset_ms`: the run's start on the
    /// media clock). Called on GStreamer's streaming thread: never blocks.
    pub fn push(&self, offset_ms: u64, running_ns: u64, pcm: Vec<f32>) {
        let media_ns = offset_ms * 1_000_000 + running_ns;
        let n = pcm.len() as u64;
        match self.tx.try_send(Audio::Pcm { media_ns, pcm }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.dropped.fetch_add(n, Ordering::Relaxed);
            }
            // no captioner (no model): nothing to do
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// A run's audio ended: what the captioner holds is transcribed now.
    pub fn flush(&self) {
        let _ = self.tx.try_send(Audio::Flush);
    }
}

/// The recorder task's end of a session's captioning: dropping it tells the
/// caption thread to finish what it has and stop.
pub struct CaptionSession {
    feed: CaptionFeed,
}

impl CaptionSession {
    pub fn feed(&self) -> CaptionFeed {
        self.feed.clone()
    }
}

impl Drop for CaptionSession {
    fn drop(&mut self) {
        self.feed.shared.closed.store(true, Ordering::Relaxed);
    }
}

impl Captions {
    pub fn new(config: CaptionConfig) -> Captions {
        Captions {
            inner: Arc::new(Inner {
                config,
                model: OnceLock::new(),
            }),
        }
    }

    pub fn disabled() -> Captions {
        Captions::new(CaptionConfig {
            enabled: false,
            model: PathBuf::new(),
        })
    }

    /// Whether programs should carry the caption branch: captions are on
    /// and the model is not known to be missing.
    pub fn wanted(&self) -> bool {
        self.inner.config.enabled && !matches!(self.inner.model.get(), Some(None))
    }

    /// The model, loaded on first use (blocking: call it off the runtime).
    fn model(&self) -> Option<Arc<asr::Model>> {
        self.inner
            .model
            .get_or_init(|| {
                let path = &self.inner.config.model;
                let t = Instant::now();
                match asr::Model::load(path) {
                    Ok(m) => {
                        tracing::info!(model = %path.display(), load_ms = t.elapsed().as_millis() as u64, "caption model loaded");
                        Some(Arc::new(m))
                    }
                    Err(e) => {
                        tracing::warn!(model = %path.display(), error = %e, "no live captions on this edge: the caption model did not load");
                        None
                    }
                }
            })
            .clone()
    }

    /// Starts a session's caption thread. Its captions go to `out` in
    /// order; `None` when captions are off.
    pub fn start(&self, session: SessionId, out: mpsc::Sender<Caption>) -> Option<CaptionSession> {
        if !self.wanted() {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(BACKLOG_BUFFERS);
        let shared = Arc::new(Shared {
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let span = tracing::info_span!("captions", session_id = %session);
        let captions = self.clone();
        let thread_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("captions-{session}"))
            .spawn(move || {
                let _enter = span.enter();
                lower_priority();
                caption_thread(captions, rx, thread_shared, out);
            });
        if let Err(e) = spawned {
            tracing::warn!(session_id = %session, error = %e, "no caption thread; the class runs without captions");
            return None;
        }
        Some(CaptionSession {
            feed: CaptionFeed { tx, shared },
        })
    }
}

/// Lowers this thread's priority (on Linux the nice value is per thread).
fn lower_priority() {
    // SAFETY: plain system calls on the calling thread's own id.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, NICE)
    };
    if r != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "caption thread keeps its priority");
    }
}

fn caption_thread(
    captions: Captions,
    rx: Receiver<Audio>,
    shared: Arc<Shared>,
    out: mpsc::Sender<Caption>,
) {
    let Some(model) = captions.model() else {
        return;
    };
    tracing::debug!("captioning");
    let mut stream = Stream::new(model);
    let mut reported_drops = 0u64;
    let mut last_report: Option<Instant> = None;
    let mut batch: Vec<(u64, Vec<f32>)> = Vec::new();
    loop {
        let first = match rx.recv_timeout(IDLE_CHECK) {
            Ok(a) => Some(a),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if shared.closed.load(Ordering::Relaxed) || out.is_closed() {
            break;
        }
        // take everything waiting: one whisper call for all of it
        let mut flush = false;
        for a in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match a {
                Audio::Pcm { media_ns, pcm } => batch.push((media_ns, pcm)),
                Audio::Flush => {
                    flush = true;
                    break;
                }
            }
        }
        let mut got = stream.push(&batch);
        batch.clear();
        if flush {
            got.extend(stream.flush());
        }
        for c in got {
            if out.blocking_send(c).is_err() {
                return;
            }
        }
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped > reported_drops && last_report.is_none_or(|t| t.elapsed() >= DROP_REPORT_EVERY)
        {
            tracing::warn!(
                dropped_ms = dropped * 1000 / RATE,
                "the captioner is behind; program audio dropped before captioning"
            );
            reported_drops = dropped;
            last_report = Some(Instant::now());
        }
    }
    // the recorder is done: what is buffered still becomes captions
    for c in stream.flush() {
        if out.blocking_send(c).is_err() {
            return;
        }
    }
    tracing::debug!("captions stopped");
}

/// A captioner and the timeline that maps its times to the media clock.
struct Stream {
    model: Arc<asr::Model>,
    captioner: asr::Captioner,
    timeline: Timeline,
    failures: u32,
}

impl Stream {
    fn new(model: Arc<asr::Model>) -> Stream {
        Stream {
            captioner: asr::Captioner::new(model.clone()),
            model,
            timeline: Timeline::default(),
            failures: 0,
        }
    }

    fn push(&mut self, batch: &[(u64, Vec<f32>)]) -> Vec<Caption> {
        if batch.is_empty() {
            return Vec::new();
        }
        let mut pcm = Vec::with_capacity(batch.iter().map(|(_, p)| p.len()).sum());
        for (media_ns, p) in batch {
            self.timeline.feed(*media_ns, p.len() as u64);
            pcm.extend_from_slice(p);
        }
        let t = Instant::now();
        let got = self.captioner.push(&pcm);
        let elapsed = t.elapsed();
        if elapsed > Duration::from_millis(100) {
            tracing::debug!(
                audio_ms = pcm.len() as u64 * 1000 / RATE,
                took_ms = elapsed.as_millis() as u64,
                "captioner ran"
            );
        }
        self.convert(got)
    }

    /// Transcribes what is buffered and starts afresh (the next audio is a
    /// new run, or nothing).
    fn flush(&mut self) -> Vec<Caption> {
        let got = self.captioner.flush();
        let out = self.convert(got);
        self.captioner = asr::Captioner::new(self.model.clone());
        self.timeline = Timeline::default();
        out
    }

    fn convert(&mut self, got: Result<Vec<asr::Caption>, asr::AsrError>) -> Vec<Caption> {
        let got = match got {
            Ok(g) => {
                self.failures = 0;
                g
            }
            Err(e) => {
                self.failures += 1;
                if self.failures == 1 || self.failures.is_power_of_two() {
                    tracing::warn!(error = %e, failures = self.failures, "captioning failed; audio skipped");
                }
                // start over rather than feed a captioner in an unknown state
                self.captioner = asr::Captioner::new(self.model.clone());
                self.timeline = Timeline::default();
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for c in got {
            let Some(text) = clean(&c.text) else {
                tracing::trace!(text = %c.text, "not a caption");
                continue;
            };
            let start_ms = self.timeline.media_ms(c.start_ms);
            let end_ms = self.timeline.media_ms(c.end_ms).max(start_ms);
            self.timeline.forget_before(c.start_ms);
            out.push(Caption {
                start_ms,
                end_ms,
                text,
            });
        }
        out
    }
}

/// Maps the captioner's time (samples fed since its start) to the media
/// clock: an anchor at the first sample and at every jump in the audio's
/// timestamps; between anchors the audio is continuous.
#[derive(Debug, Default)]
struct Timeline {
    /// (samples fed before it, media ns of that sample)
    anchors: Vec<(u64, u64)>,
    fed: u64,
    /// Media ns the next sample should have if nothing is missing.
    next_ns: Option<u64>,
}

impl Timeline {
    /// `n` samples starting at `media_ns` go to the captioner next.
    fn feed(&mut self, media_ns: u64, n: u64) {
        let continuous = self
            .next_ns
            .is_some_and(|e| e.abs_diff(media_ns) <= JUMP_NS);
        if !continuous {
            self.anchors.push((self.fed, media_ns));
        }
        self.fed += n;
        self.next_ns = Some(media_ns + n * NS_PER_SAMPLE);
    }

    /// The media time of a captioner time (ms since its first sample).
    fn media_ms(&self, captioner_ms: u64) -> u64 {
        let sample = captioner_ms * RATE / 1000;
        let anchor = self
            .anchors
            .iter()
            .rev()
            .find(|(at, _)| *at <= sample)
            .or(self.anchors.first());
        match anchor {
            Some((at, ns)) => (ns + sample.saturating_sub(*at) * NS_PER_SAMPLE) / 1_000_000,
            None => 0,
        }
    }

    /// Captions come in order: anchors before the one covering
    /// `captioner_ms` are no longer needed.
    fn forget_before(&mut self, captioner_ms: u64) {
        let sample = captioner_ms * RATE / 1000;
        if let Some(i) = self.anchors.iter().rposition(|(at, _)| *at <= sample) {
            self.anchors.drain(..i);
        }
    }
}

/// A caption's text without whisper's non-speech annotations
/// ("[BLANK_AUDIO]", "(music)", "*laughs*"); `None` when nothing is left.
fn clean(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    // an annotation being skipped: its closing mark and what it held (kept
    // if it never closes: then it was not an annotation)
    let mut open: Option<(char, String)> = None;
    for ch in text.chars() {
        match open.as_mut() {
            Some((c, _)) if ch == *c => open = None,
            Some((_, held)) => held.push(ch),
            None => match ch {
                '[' => open = Some((']', "[".into())),
                '(' => open = Some((')', "(".into())),
                '*' => open = Some(('*', "*".into())),
                '♪' => {}
                _ => out.push(ch),
            },
        }
    }
    if let Some((_, held)) = open {
        out.push_str(&held);
    }
    let out = without_loops(&out.split_whitespace().collect::<Vec<_>>());
    out.chars().any(char::is_alphanumeric).then_some(out)
}

/// Whisper, decoding greedily, sometimes gets stuck repeating itself ("We
/// will discuss it. We will discuss it. We will discuss it. We will"): a
/// phrase of up to `MAX_LOOP_WORDS` words said again right after itself is
/// kept once, and a trailing cut-off start of it is dropped. A word or short
/// phrase said twice on purpose ("very, very") stays.
fn without_loops(words: &[&str]) -> String {
    const MAX_LOOP_WORDS: usize = 16;
    let norm: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect();
    let mut keep: Vec<usize> = Vec::new();
    let mut i = 0;
    'words: while i < words.len() {
        for n in (1..=MAX_LOOP_WORDS).rev() {
            // the last n kept words repeat from here on (short phrases only
            // when they come a third time: "very, very" is speech)
            let Some(tail) = keep.len().checked_sub(n) else {
                continue;
            };
            let phrase: Vec<&String> = keep[tail..].iter().map(|k| &norm[*k]).collect();
            let again =
                |at: usize| at + n <= words.len() && (0..n).all(|j| norm[at + j] == *phrase[j]);
            let twice_before = tail >= n && (0..n).all(|j| norm[keep[tail - n + j]] == *phrase[j]);
            if again(i) && (n >= 3 || twice_before) {
                i += n;
                continue 'words;
            }
            // the stream ends in a cut-off repeat of the phrase
            let rest = words.len() - i;
            if n >= 3 && rest < n && (0..rest).all(|j| norm[i + j] == *phrase[j]) {
                break 'words;
            }
        }
        keep.push(i);
        i += 1;
    }
    keep.iter().map(|k| words[*k]).collect::<Vec<_>>().join(" ")
}

/// Logs each caption as it comes (as the platform); stops when the caption
/// thread does or the session is gone.
pub(super) async fn log_captions(
    handle: crate::runtime::session::SessionHandle,
    mut captions: mpsc::Receiver<Caption>,
) {
    while let Some(c) = captions.recv().await {
        let (start_ms, end_ms, chars) = (c.start_ms, c.end_ms, c.text.len());
        let event = protocol::EventBody::CaptionSegment {
            start_ms: c.start_ms,
            end_ms: c.end_ms,
            text: c.text,
            speaker: None,
        };
        match handle
            .command(protocol::Actor::System, protocol::Command::System { event })
            .await
        {
            Ok(protocol::control::EdgeReply::Done { .. }) => {
                tracing::debug!(start_ms, end_ms, chars, "caption logged")
            }
            // the class has ended: late captions have nowhere to go
            Ok(other) => tracing::debug!(start_ms, end_ms, reply = ?other, "caption not logged"),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn noise_annotations_are_not_captions() {
        for (input, want) in [
            ("[BLANK_AUDIO]", None),
            (" (music)", None),
            ("[Music] ♪", None),
            ("*laughs*", None),
            (" - ...", None),
            (" Hello, class.", Some("Hello, class.")),
            (
                "(coughs) Today we look at  cells.",
                Some("Today we look at cells."),
            ),
            ("[BLANK_AUDIO] Photosynthesis", Some("Photosynthesis")),
            ("light (for example", Some("light (for example")),
            (
                "We will discuss it later. We will discuss it later. We will discuss it later. We will",
                Some("We will discuss it later."),
            ),
            ("the the the the the", Some("the the")),
            ("It is very, very hot.", Some("It is very, very hot.")),
            (
                "Plants need light and light and water.",
                Some("Plants need light and light and water."),
            ),
            ("Say it again: again.", Some("Say it again: again.")),
        ] {
            assert_eq!(clean(input).as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn continuous_audio_maps_by_its_first_sample() {
        let mut t = Timeline::default();
        // a run at 12.5 s on the media clock, 10 ms buffers
        for i in 0..500 {
            t.feed(12_500 * MS + i * 10 * MS, 160);
        }
        assert_eq!(t.media_ms(0), 12_500);
        assert_eq!(t.media_ms(3_210), 15_710);
        // timestamps jitter by a little: still continuous
        t.feed(17_500 * MS + 3 * MS, 160);
        assert_eq!(t.anchors.len(), 1);
        assert_eq!(t.media_ms(5_005), 17_505);
    }

    #[test]
    fn dropped_audio_and_a_new_run_are_anchored() {
        let mut t = Timeline::default();
        for i in 0..100 {
            t.feed(i * 10 * MS, 160); // 0..1 s
        }
        // 2 s dropped (the captioner was behind)
        for i in 0..100 {
            t.feed(3_000 * MS + i * 10 * MS, 160); // 3..4 s
        }
        // the recorder re-armed after a crash at 60 s
        for i in 0..100 {
            t.feed(60_000 * MS + i * 10 * MS, 160);
        }
        assert_eq!(t.media_ms(500), 500);
        assert_eq!(t.media_ms(1_000), 3_000);
        assert_eq!(t.media_ms(1_999), 3_999);
        assert_eq!(t.media_ms(2_250), 60_250);
        t.forget_before(1_500);
        assert_eq!(t.anchors.len(), 2);
        assert_eq!(t.media_ms(1_600), 3_600);
        assert_eq!(t.media_ms(2_250), 60_250);
    }
}
