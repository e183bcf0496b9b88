//! The program pipeline (GStreamer): sources composed into 1280x720 at 30
//! fps, H.264 + AAC, cut into ~6 s MP4 segments by `splitmuxsink`.
//!
//! Layout changes are queued with the running time they take effect at and
//! applied in the compositor's `samples-selected` signal, just before the
//! first frame at or after that time is blended: switches land within one
//! frame, never torn. Segments are written fragmented (1 s fragments) as
//! `*.mp4.part` and renamed once closed, so a crash loses at most the open
//! segment and the spool only ever shows complete files.
//!
//! With captions on, the mix is also resampled to 16 kHz mono f32 for the
//! captioner (`Program::caption_audio`), behind a leaky queue: a slow
//! captioner loses its own audio, never the recording's.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::layout::{HEIGHT, Place, Source, WIDTH};
pub use crate::fanout::StreamFrame;

/// Segment length.
pub const SEGMENT_SECS: u64 = 6;
const MS: u64 = 1_000_000;
/// Stills (slide, whiteboard) are re-sent this often so the compositor
/// always holds a current frame.
pub const STILL_FPS: u64 = 4;
/// How far behind "now" participants' media reaches the compositor: the
/// recording ends this much before the finish so its last frames have them.
const END_MARGIN_MS: u64 = 150;

/// A still picture source: its current frame and the last time stamped.
struct Still {
    src: gst_app::AppSrc,
    frame: gst::Buffer,
    last_pts: Option<u64>,
}

impl Still {
    fn new(src: gst_app::AppSrc, frame: Vec<u8>) -> Still {
        Still {
            src,
            frame: gst::Buffer::from_mut_slice(frame),
            last_pts: None,
        }
    }

    /// Sends the current frame stamped `at_ns` (kept monotonic).
    fn push(&mut self, at_ns: u64) {
        let pts = match self.last_pts {
            Some(l) if at_ns <= l => l + MS,
            _ => at_ns,
        };
        self.last_pts = Some(pts);
        let mut b = self.frame.copy();
        if let Some(b) = b.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            b.set_duration(gst::ClockTime::from_nseconds(1_000 * MS / STILL_FPS));
        }
        let _ = self.src.push_buffer(b);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("GStreamer: {0}")]
    Gst(String),
}

impl From<gst::glib::Error> for PipelineError {
    fn from(e: gst::glib::Error) -> Self {
        PipelineError::Gst(e.to_string())
    }
}
impl From<gst::glib::BoolError> for PipelineError {
    fn from(e: gst::glib::BoolError) -> Self {
        PipelineError::Gst(e.to_string())
    }
}
impl From<gst::StateChangeError> for PipelineError {
    fn from(e: gst::StateChangeError) -> Self {
        PipelineError::Gst(e.to_string())
    }
}

/// What the bus tells the recorder.
#[derive(Debug)]
pub enum Note {
    SegmentOpened {
        path: PathBuf,
        running_ms: u64,
    },
    SegmentClosed {
        path: PathBuf,
        running_ms: u64,
    },
    /// One input failed (e.g. undecodable media): drop it, keep recording.
    InputError {
        input: u64,
        message: String,
    },
    Error(String),
    Eos,
}

/// Encoded media codecs the inputs accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Vp8,
    H264,
    Opus,
}

struct Input {
    src: gst_app::AppSrc,
    bin: gst::Bin,
    /// The compositor or mixer pad it feeds.
    pad: gst::Pad,
}

pub struct Program {
    /// Output after this running time (ns) is dropped (set when finishing).
    cutoff: Arc<AtomicU64>,
    pipeline: gst::Pipeline,
    slide: Still,
    whiteboard: Still,
    comp: gst::Element,
    amix: gst::Element,
    /// compositor pads by source
    pads: Arc<Mutex<HashMap<Source, gst::Pad>>>,
    layouts: Arc<Mutex<VecDeque<(u64, Vec<(Source, Place)>)>>>,
    inputs: HashMap<u64, Input>,
    next_input: u64,
    spool: PathBuf,
    feed: Option<tokio::sync::mpsc::Receiver<ProgramFrame>>,
    /// The mix at 16 kHz mono for live captions (when asked for).
    asr: Option<gst_app::AppSink>,
    /// The encoded program (H.264 and AAC samples) for the destinations'
    /// pushers; sending never waits (a receiver that falls behind lags).
    stream: tokio::sync::broadcast::Sender<StreamFrame>,
}

/// Encoded samples a pusher may fall behind by before it lags.
const STREAM_BACKLOG: usize = 256;

/// One RTP packet of the encoded program (H.264, payload type 102; every
/// IDR is preceded by SPS/PPS), for public viewers and the mesh.
#[derive(Debug, Clone)]
pub struct ProgramFrame {
    /// The mix (Opus, payload type 111) rather than the picture.
    pub audio: bool,
    pub data: bytes::Bytes,
}

fn ensure_init() -> Result<(), PipelineError> {
    gst::init().map_err(PipelineError::from)
}

fn raw_caps(fps: i32) -> String {
    format!(
        "video/x-raw,format=I420,width={WIDTH},height={HEIGHT},framerate={fps}/1,pixel-aspect-ratio=1/1"
    )
}

fn appsrc(bin: &gst::Bin, name: &str) -> Result<gst_app::AppSrc, PipelineError> {
    bin.by_name(name)
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| PipelineError::Gst(format!("no appsrc {name}")))
}

impl Program {
    /// Builds the pipeline (not yet playing). Segments go to `spool` as
    /// `seg<first_index + n>.mp4`. `captions`: the mix also goes out as
    /// 16 kHz mono PCM (see `caption_audio`).
    pub fn new(spool: &Path, first_index: u32, captions: bool) -> Result<Program, PipelineError> {
        ensure_init()?;
        std::fs::create_dir_all(spool)
            .map_err(|e| PipelineError::Gst(format!("spool {}: {e}", spool.display())))?;
        Program::build(Some((spool, first_index)), captions)
    }

    /// The public program: composed and encoded like the recording, but
    /// neither recorded nor sent to viewers; only its pushers take it. The
    /// task feeds it only what the public may see.
    pub fn public() -> Result<Program, PipelineError> {
        ensure_init()?;
        Program::build(None, false)
    }

    fn build(record: Option<(&Path, u32)>, captions: bool) -> Result<Program, PipelineError> {
        let desc = match record {
            Some(_) => Program::recording_desc(captions),
            None => Program::public_desc(),
        };
        Program::assemble(&desc, record, captions)
    }

    /// What the pushers take: the encoded picture and sound, behind leaky
    /// queues (a stalled destination never holds up the program).
    /// At the end they never hold up the recording's EOS.
    const STREAM_VIDEO_SINK: &str =
        "appsink name=svideo sync=false async=false drop=true max-buffers=120 wait-on-eos=false";
    const STREAM_AUDIO_SINK: &str =
        "appsink name=saudio sync=false async=false drop=true max-buffers=200 wait-on-eos=false";

    fn public_desc() -> String {
        format!(
            "compositor name=comp background=black emit-signals=true latency=100000000 \
               ! {out} ! queue max-size-buffers=8 \
               ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=30 bitrate=2500 option-string=scenecut=0 \
               ! video/x-h264,profile=high ! h264parse \
               ! queue leaky=downstream max-size-buffers=90 max-size-bytes=0 max-size-time=0 ! {vsink} \
             audiomixer name=amix emit-signals=true latency=100000000 \
               ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac bitrate=128000 ! aacparse \
               ! queue leaky=downstream max-size-buffers=100 max-size-bytes=0 max-size-time=0 ! {asink} \
             videotestsrc is-live=true pattern=black ! {out} ! comp.sink_0 \
             audiotestsrc is-live=true wave=silence ! audio/x-raw,rate=48000,channels=2 ! amix.sink_0 \
             appsrc name=slide format=time is-live=true caps={still} ! queue max-size-buffers=4 ! comp.sink_1 \
             appsrc name=wb format=time is-live=true caps={still} ! queue max-size-buffers=4 ! comp.sink_2",
            out = raw_caps(30),
            still = raw_caps(STILL_FPS as i32),
            vsink = Program::STREAM_VIDEO_SINK,
            asink = Program::STREAM_AUDIO_SINK,
        )
    }

    fn recording_desc(captions: bool) -> String {
        format!(
            "compositor name=comp background=black emit-signals=true latency=100000000 \
               ! {out} ! queue max-size-buffers=8 \
               ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=30 bitrate=2500 option-string=scenecut=0 \
               ! video/x-h264,profile=high ! h264parse ! tee name=vt ! queue ! mux.video \
             vt. ! queue leaky=downstream max-size-buffers=90 max-size-bytes=0 max-size-time=0 \
               ! rtph264pay config-interval=-1 mtu=1200 pt=102 aggregate-mode=zero-latency \
               ! appsink name=feed sync=false async=false drop=true max-buffers=600 \
             vt. ! queue leaky=downstream max-size-buffers=90 max-size-bytes=0 max-size-time=0 ! {vsink} \
             audiomixer name=amix emit-signals=true latency=100000000 \
               ! audio/x-raw,rate=48000,channels=2 ! tee name=at \
               ! queue ! audioconvert ! avenc_aac bitrate=128000 ! aacparse ! tee name=aact ! queue ! mux.audio_0 \
             aact. ! queue leaky=downstream max-size-buffers=100 max-size-bytes=0 max-size-time=0 ! {asink} \
             at. ! queue leaky=downstream max-size-buffers=50 max-size-bytes=0 max-size-time=0 \
               ! audioconvert ! opusenc bitrate=64000 frame-size=20 ! rtpopuspay pt=111 \
               ! appsink name=afeed sync=false async=false drop=true max-buffers=200 \
             {asr} \
             videotestsrc is-live=true pattern=black ! {out} ! comp.sink_0 \
             audiotestsrc is-live=true wave=silence ! audio/x-raw,rate=48000,channels=2 ! amix.sink_0 \
             appsrc name=slide format=time is-live=true caps={still} ! queue max-size-buffers=4 ! comp.sink_1 \
             appsrc name=wb format=time is-live=true caps={still} ! queue max-size-buffers=4 ! comp.sink_2 \
             splitmuxsink name=mux async-finalize=true muxer-factory=mp4mux \
               muxer-properties=\"properties,fragment-duration=(uint)1000\" \
               max-size-time={seg} send-keyframe-requests=true",
            out = raw_caps(30),
            still = raw_caps(STILL_FPS as i32),
            vsink = Program::STREAM_VIDEO_SINK,
            asink = Program::STREAM_AUDIO_SINK,
            seg = SEGMENT_SECS * 1000 * MS,
            // 2 s of slack, then the captioner's audio is dropped; at the
            // end the sink never waits for its buffers to be taken (with no
            // captioner attached, its EOS would hold up the recording's)
            asr = if captions {
                "at. ! queue leaky=downstream max-size-buffers=200 max-size-bytes=0 max-size-time=0 \
                   ! audioconvert ! audioresample \
                   ! audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved \
                   ! appsink name=asr sync=false async=false drop=true max-buffers=200 wait-on-eos=false"
            } else {
                ""
            },
        )
    }

    fn assemble(
        desc: &str,
        record: Option<(&Path, u32)>,
        captions: bool,
    ) -> Result<Program, PipelineError> {
        let pipeline = gst::parse::launch(desc)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| PipelineError::Gst("not a pipeline".into()))?;
        let slide = appsrc(pipeline.upcast_ref(), "slide")?;
        let whiteboard = appsrc(pipeline.upcast_ref(), "wb")?;
        let comp = pipeline
            .by_name("comp")
            .ok_or_else(|| PipelineError::Gst("no compositor".into()))?;
        let amix = pipeline
            .by_name("amix")
            .ok_or_else(|| PipelineError::Gst("no mixer".into()))?;
        let mux = match record {
            Some(_) => Some(
                pipeline
                    .by_name("mux")
                    .ok_or_else(|| PipelineError::Gst("no splitmuxsink".into()))?,
            ),
            None => None,
        };
        let asr = match captions && record.is_some() {
            true => Some(
                pipeline
                    .by_name("asr")
                    .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                    .ok_or_else(|| PipelineError::Gst("no caption audio sink".into()))?,
            ),
            false => None,
        };
        let (stream, _) = tokio::sync::broadcast::channel::<StreamFrame>(STREAM_BACKLOG);
        for (name, video) in [("svideo", true), ("saudio", false)] {
            let sink = pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .ok_or_else(|| PipelineError::Gst(format!("no stream sink {name}")))?;
            let stream = stream.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        // no receiver (no destination) is not an error
                        let _ = stream.send(StreamFrame { video, sample });
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        // The program feed never holds up the recording: a full channel drops.
        let (feed_tx, feed) = tokio::sync::mpsc::channel::<ProgramFrame>(800);
        let feeds: &[(&str, bool)] = match record {
            Some(_) => &[("feed", false), ("afeed", true)],
            None => &[],
        };
        for &(name, audio) in feeds {
            let sink = pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .ok_or_else(|| PipelineError::Gst(format!("no program feed sink {name}")))?;
            let feed_tx = feed_tx.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(buf) = sample.buffer()
                            && let Ok(map) = buf.map_readable()
                        {
                            let data = bytes::Bytes::copy_from_slice(map.as_slice());
                            let _ = feed_tx.try_send(ProgramFrame { audio, data });
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }

        let mut pads = HashMap::new();
        for (source, name) in [(Source::Slide, "sink_1"), (Source::Whiteboard, "sink_2")] {
            if let Some(p) = comp.static_pad(name) {
                p.set_property("alpha", 0.0f64);
                p.set_property("zorder", stacking(source));
                pads.insert(source, p);
            }
        }
        let pads = Arc::new(Mutex::new(pads));
        let layouts: Arc<Mutex<VecDeque<(u64, Vec<(Source, Place)>)>>> = Arc::default();

        // Segment names: written as .part, renamed when closed.
        if let (Some(mux), Some((spool, first_index))) = (&mux, record) {
            let dir = spool.to_path_buf();
            mux.connect("format-location", false, move |vals| {
                let idx = vals.get(1).and_then(|v| v.get::<u32>().ok()).unwrap_or(0);
                let path = dir.join(format!("seg{:05}.mp4.part", first_index + idx));
                Some(path.display().to_string().to_value())
            });
        }
        // Layouts apply just before the first frame at or after their time.
        {
            let pads = pads.clone();
            let layouts = layouts.clone();
            comp.connect("samples-selected", false, move |vals| {
                let pts = vals
                    .get(2)
                    .and_then(|v| v.get::<gst::ClockTime>().ok())
                    .map(|t| t.nseconds());
                let pts = pts?;
                let Ok(mut q) = layouts.lock() else {
                    return None;
                };
                while q.front().is_some_and(|(t, _)| *t <= pts) {
                    if let Some((_, places)) = q.pop_front()
                        && let Ok(pads) = pads.lock()
                    {
                        apply(&pads, &places);
                    }
                }
                None
            });
        }
        // The live compositor stamps its first frame twice; x264 then emits a
        // frame without a timestamp, which mp4mux refuses. Drop repeats.
        // At the end, output stops where every input still had media (inputs
        // reach the compositor a little behind the stills).
        let cutoff = Arc::new(AtomicU64::new(u64::MAX));
        if let Some(src) = amix.static_pad("src") {
            let cutoff = cutoff.clone();
            src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let pts = info.buffer().and_then(|b| b.pts()).map(|t| t.nseconds());
                if pts.is_some_and(|p| p > cutoff.load(Ordering::Relaxed)) {
                    return gst::PadProbeReturn::Drop;
                }
                gst::PadProbeReturn::Ok
            });
        }
        if let Some(src) = comp.static_pad("src") {
            let last = Mutex::new(None::<u64>);
            let cutoff = cutoff.clone();
            src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let pts = info.buffer().and_then(|b| b.pts()).map(|t| t.nseconds());
                if pts.is_some_and(|p| p > cutoff.load(Ordering::Relaxed)) {
                    return gst::PadProbeReturn::Drop;
                }
                let Ok(mut last) = last.lock() else {
                    return gst::PadProbeReturn::Ok;
                };
                match (pts, *last) {
                    (Some(p), Some(l)) if p <= l => gst::PadProbeReturn::Drop,
                    (Some(p), _) => {
                        *last = Some(p);
                        gst::PadProbeReturn::Ok
                    }
                    (None, _) => gst::PadProbeReturn::Drop,
                }
            });
        }
        Ok(Program {
            cutoff,
            pipeline,
            slide: Still::new(slide, super::raster::solid_i420(16, 128, 128)),
            whiteboard: Still::new(whiteboard, super::raster::whiteboard(&[])),
            comp,
            amix,
            pads,
            layouts,
            inputs: HashMap::new(),
            next_input: 1,
            spool: record.map(|(p, _)| p.to_path_buf()).unwrap_or_default(),
            feed: record.is_some().then_some(feed),
            asr,
            stream,
        })
    }

    /// Hands the mix, 16 kHz mono f32, buffer by buffer to `on_pcm` (the
    /// running time of its first sample in ns, the samples) and calls
    /// `on_end` when it ends (EOS). Both run on GStreamer's streaming
    /// thread and must not block. False when the program was built without
    /// captions.
    pub fn caption_audio(
        &self,
        on_pcm: impl Fn(u64, Vec<f32>) + Send + Sync + 'static,
        on_end: impl Fn() + Send + Sync + 'static,
    ) -> bool {
        let Some(sink) = self.asr.as_ref() else {
            return false;
        };
        // the PCM of one sample, with the running time of its first sample
        fn pcm_of(sample: &gst::Sample) -> Option<(u64, Vec<f32>)> {
            let buf = sample.buffer()?;
            let running = sample
                .segment()?
                .downcast_ref::<gst::ClockTime>()?
                .to_running_time(buf.pts()?)?;
            let map = buf.map_readable().ok()?;
            let pcm = map
                .as_slice()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Some((running.nseconds(), pcm))
        }
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some((running, pcm)) = pcm_of(&sample) {
                        on_pcm(running, pcm);
                    }
                    // what queued up before the callbacks were set: taking
                    // one sample per new one would keep that lag for ever
                    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::ZERO) {
                        if let Some((running, pcm)) = pcm_of(&sample) {
                            on_pcm(running, pcm);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .eos(move |_| on_end())
                .build(),
        );
        true
    }

    /// The encoded program for pushers (subscribe to it).
    pub fn stream(&self) -> tokio::sync::broadcast::Sender<StreamFrame> {
        self.stream.clone()
    }

    /// The encoded program, frame by frame (once; later calls get `None`).
    pub fn take_feed(&mut self) -> Option<tokio::sync::mpsc::Receiver<ProgramFrame>> {
        self.feed.take()
    }

    pub fn play(&self) -> Result<(), PipelineError> {
        self.pipeline.set_state(gst::State::Playing)?;
        Ok(())
    }

    /// The pipeline's running time now, in ms (media time of this run).
    pub fn running_ms(&self) -> u64 {
        self.pipeline
            .current_running_time()
            .map(|t| t.mseconds())
            .unwrap_or(0)
    }

    /// A stream of bus notes for the recorder task.
    pub fn notes(&self) -> Option<impl futures::Stream<Item = Note> + use<>> {
        use futures::StreamExt;
        let bus = self.pipeline.bus()?;
        Some(bus.stream().filter_map(|msg| async move {
            match msg.view() {
                gst::MessageView::Element(e) => {
                    let s = e.structure()?;
                    let path = PathBuf::from(s.get::<&str>("location").ok()?);
                    let running_ms = s
                        .get::<gst::ClockTime>("running-time")
                        .map(|t| t.mseconds())
                        .ok()
                        .or_else(|| s.get::<u64>("running-time").ok().map(|n| n / MS))?;
                    match s.name().as_str() {
                        "splitmuxsink-fragment-opened" => {
                            Some(Note::SegmentOpened { path, running_ms })
                        }
                        "splitmuxsink-fragment-closed" => {
                            Some(Note::SegmentClosed { path, running_ms })
                        }
                        _ => None,
                    }
                }
                gst::MessageView::Error(e) => {
                    let message = format!("{} ({:?})", e.error(), e.debug());
                    match input_of(msg.src()) {
                        Some(input) => Some(Note::InputError { input, message }),
                        None => Some(Note::Error(message)),
                    }
                }
                gst::MessageView::Eos(_) => Some(Note::Eos),
                _ => None,
            }
        }))
    }

    /// Queues a layout to take effect at `at_ms` of running time (now, for live events).
    pub fn set_layout(&self, at_ms: u64, places: Vec<(Source, Place)>) {
        if let Ok(mut q) = self.layouts.lock() {
            q.push_back((at_ms * MS, places));
        }
    }

    /// Shows a new slide picture from `at_ms` of running time.
    pub fn set_slide(&mut self, frame: gst::Buffer, at_ms: u64) {
        self.slide.frame = frame;
        self.slide.push(at_ms * MS);
    }

    /// Shows a new whiteboard picture from `at_ms` of running time.
    pub fn set_whiteboard(&mut self, frame: Vec<u8>, at_ms: u64) {
        self.whiteboard.frame = gst::Buffer::from_mut_slice(frame);
        self.whiteboard.push(at_ms * MS);
    }

    /// Re-sends the stills (call `STILL_FPS` times a second).
    pub fn tick_stills(&mut self) {
        let now = self
            .pipeline
            .current_running_time()
            .map(|t| t.nseconds())
            .unwrap_or(0);
        self.slide.push(now);
        self.whiteboard.push(now);
    }

    /// Adds an RTP input (a participant's camera, screen or microphone) and
    /// returns its id. Video goes to the compositor under `source`.
    ///
    /// `raw_audio`: an Opus input also keeps its packets, untouched, in this
    /// Ogg file (the transcriber's per-speaker audio).
    pub fn add_input(
        &mut self,
        codec: Codec,
        pt: u8,
        source: Option<Source>,
        raw_audio: Option<&Path>,
        on_keyframe: impl Fn() + Send + Sync + 'static,
    ) -> Result<u64, PipelineError> {
        let (caps, chain, video) = match codec {
            Codec::Vp8 => (
                format!(
                    "application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload={pt}"
                ),
                "rtpvp8depay request-keyframe=true wait-for-keyframe=true ! vp8dec max-errors=-1 ! videoconvert ! queue max-size-buffers=3",
                true,
            ),
            Codec::H264 => (
                format!(
                    "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload={pt}"
                ),
                "rtph264depay request-keyframe=true wait-for-keyframe=true ! h264parse ! avdec_h264 max-errors=-1 ! videoconvert ! queue max-size-buffers=3",
                true,
            ),
            Codec::Opus => (
                format!(
                    "application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload={pt}"
                ),
                "rtpopusdepay ! opusdec plc=true max-errors=-1 ! audioconvert ! audioresample ! queue",
                false,
            ),
        };
        let id = self.next_input;
        self.next_input += 1;
        let mut chain = chain.to_string();
        if let (Codec::Opus, Some(file)) = (codec, raw_audio) {
            chain = format!(
                "rtpopusdepay ! tee name=t ! queue ! opusdec plc=true max-errors=-1 ! audioconvert ! audioresample ! queue \
                 t. ! queue ! opusparse ! oggmux ! filesink sync=false location=\"{}\"",
                file.display()
            );
        }
        let desc = format!(
            "appsrc name=in format=time is-live=true do-timestamp=true max-bytes=4000000 block=false caps=\"{caps}\" ! {chain}"
        );
        let bin = gst::parse::bin_from_description(&desc, true)?;
        bin.set_property("name", format!("input{id}"));
        let src = appsrc(&bin, "in")?;
        src.set_property_from_str("leaky-type", "downstream");
        // the depayloader asks for a keyframe after a loss: send it upstream
        if let Some(pad) = src.static_pad("src") {
            pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                if let Some(ev) = info.event()
                    && ev
                        .structure()
                        .is_some_and(|s| s.name() == "GstForceKeyUnit")
                {
                    on_keyframe();
                }
                gst::PadProbeReturn::Ok
            });
        }
        self.pipeline.add(&bin)?;
        let target = if video { &self.comp } else { &self.amix };
        let pad = target
            .request_pad_simple("sink_%u")
            .ok_or_else(|| PipelineError::Gst("no free pad".into()))?;
        if video {
            pad.set_property("alpha", 0.0f64);
            if let Some(s) = source {
                pad.set_property("zorder", stacking(s));
            }
        }
        let out = bin
            .static_pad("src")
            .ok_or_else(|| PipelineError::Gst("input without src pad".into()))?;
        out.link(&pad)
            .map_err(|e| PipelineError::Gst(format!("linking input: {e:?}")))?;
        bin.sync_state_with_parent()?;
        if let (true, Some(s)) = (video, source)
            && let Ok(mut pads) = self.pads.lock()
        {
            pads.insert(s, pad.clone());
        }
        self.inputs.insert(id, Input { src, bin, pad });
        Ok(id)
    }

    /// Pushes one RTP packet into an input.
    pub fn push_rtp(&self, input: u64, packet: Vec<u8>) {
        if let Some(i) = self.inputs.get(&input) {
            let _ = i.src.push_buffer(gst::Buffer::from_mut_slice(packet));
        }
    }

    /// Ends an input (its track ended or its owner withdrew consent): it is
    /// hidden or muted at once and never fed again.
    pub fn remove_input(&mut self, input: u64) {
        let Some(i) = self.inputs.remove(&input) else {
            return;
        };
        if i.pad.has_property("mute") {
            i.pad.set_property("mute", true);
        } else {
            i.pad.set_property("alpha", 0.0f64);
        }
        if let Ok(mut pads) = self.pads.lock() {
            pads.retain(|_, p| p != &i.pad);
        }
        let _ = i.src.end_of_stream();
        let _ = &i.bin;
    }

    /// Starts ending the recording: EOS through the pipeline, so the open
    /// segment is closed properly. `Note::Eos` follows once it drained;
    /// then call `stop`.
    pub fn begin_finish(&self) {
        let now = self
            .pipeline
            .current_running_time()
            .map(|t| t.nseconds())
            .unwrap_or(0);
        self.cutoff
            .store(now.saturating_sub(END_MARGIN_MS * MS), Ordering::Relaxed);
        // one EOS to every source at once: ending inputs one by one would
        // leave the last frames without them
        self.pipeline.send_event(gst::event::Eos::new());
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    pub fn spool(&self) -> &Path {
        &self.spool
    }
}

/// Each source's fixed stacking order: cameras over any content. The
/// compositor does not take zorder changes while running (a pad whose
/// zorder changes stays unblended for seconds), so layouts only move,
/// resize and fade pads.
fn stacking(s: Source) -> u32 {
    match s {
        Source::Whiteboard => 1,
        Source::Slide => 2,
        Source::Screen => 3,
        Source::Camera(slot) => 10 + slot as u32,
    }
}

/// The input a message comes from: an element inside a bin named `input<N>`.
fn input_of(src: Option<&gst::Object>) -> Option<u64> {
    let mut cur = src.cloned();
    while let Some(o) = cur {
        if let Some(n) = o.name().strip_prefix("input").and_then(|n| n.parse().ok()) {
            return Some(n);
        }
        cur = o.parent();
    }
    None
}

fn apply(pads: &HashMap<Source, gst::Pad>, places: &[(Source, Place)]) {
    for (s, p) in places {
        if let Some(pad) = pads.get(s) {
            pad.set_property("xpos", p.x);
            pad.set_property("ypos", p.y);
            pad.set_property("width", p.w);
            pad.set_property("height", p.h);
            pad.set_property("alpha", p.alpha);
        }
    }
}

/// Decodes a PNG (a slide page) into one I420 1280x720 frame, letterboxed.
pub fn png_to_i420(png: &Path) -> Result<Vec<u8>, PipelineError> {
    ensure_init()?;
    let desc = format!(
        "filesrc location=\"{}\" ! pngdec ! videoconvert ! videoscale add-borders=true \
         ! video/x-raw,format=I420,width={WIDTH},height={HEIGHT},pixel-aspect-ratio=1/1 ! appsink name=out sync=false",
        png.display()
    );
    let p = gst::parse::launch(&desc)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| PipelineError::Gst("not a pipeline".into()))?;
    let sink = p
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| PipelineError::Gst("no appsink".into()))?;
    p.set_state(gst::State::Playing)?;
    let sample = sink
        .pull_sample()
        .map_err(|_| PipelineError::Gst("the PNG gave no frame".into()));
    let _ = p.set_state(gst::State::Null);
    let sample = sample?;
    let buf = sample
        .buffer()
        .ok_or_else(|| PipelineError::Gst("empty sample".into()))?;
    let map = buf
        .map_readable()
        .map_err(|_| PipelineError::Gst("unreadable frame".into()))?;
    Ok(map.as_slice().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_program_streams_h264_keyframes_and_aac() {
        ensure_init().unwrap();
        let program = Program::public().unwrap();
        let mut rx = program.stream().subscribe();
        program.play().unwrap();
        let (mut video, mut keys, mut audio) = (0, 0, 0);
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(20) && (keys < 2 || audio < 20) {
            match rx.try_recv() {
                Ok(f) => {
                    let buf = f.sample.buffer().unwrap();
                    assert!(buf.pts().is_some());
                    if f.video {
                        video += 1;
                        if !buf.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                            keys += 1;
                        }
                    } else {
                        audio += 1;
                    }
                }
                Err(_) => std::thread::yield_now(),
            }
        }
        program.stop();
        assert!(
            keys >= 2 && audio >= 20,
            "{video} video ({keys} keyframes), {audio} audio"
        );
    }

    #[test]
    fn a_png_becomes_one_full_frame() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("red.png");
        ensure_init().unwrap();
        let p = gst::parse::launch(&format!(
            "videotestsrc pattern=red num-buffers=1 ! video/x-raw,width=960,height=540 ! pngenc ! filesink location=\"{}\"",
            png.display()
        ))
        .unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let bus = p.bus().unwrap();
        bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        p.set_state(gst::State::Null).unwrap();
        let frame = png_to_i420(&png).unwrap();
        let (w, h) = (WIDTH as usize, HEIGHT as usize);
        assert_eq!(frame.len(), w * h * 3 / 2);
        // BT.601 red: Y 81, U 90, V 240 (give or take rounding)
        let y = frame[w * (h / 2) + w / 2];
        let u = frame[w * h + (w / 2) * (h / 4) + w / 4];
        let v = frame[w * h + w * h / 4 + (w / 2) * (h / 4) + w / 4];
        assert!(
            (y as i32 - 81).abs() < 8 && (u as i32 - 90).abs() < 8 && (v as i32 - 240).abs() < 8,
            "{y} {u} {v}"
        );
    }
}
