//! One destination's pusher: a GStreamer pipeline of its own (`appsrc !
//! flvmux ! rtmp2sink` for RTMP(S), `appsrc ! mpegtsmux ! srtsink` for SRT)
//! fed with the samples of the program its audience takes. The program is
//! encoded once; a pusher only muxes and sends.
//!
//! Isolation: the pusher reads the program through a broadcast channel (a
//! pusher that falls behind lags and waits for the next keyframe; the
//! program never waits), its appsrc never blocks (past `MAX_QUEUED` bytes a
//! frame is dropped and counted), and its pipeline has its own threads and
//! bus: a refused, stalled or dropped connection touches nothing else.
//! A failed attempt is retried with exponential backoff and jitter.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use protocol::control::{PushKind, PushTarget};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::StreamFrame;

/// Bytes a destination's own queue may hold before frames are dropped
/// (about 6 s of the program).
const MAX_QUEUED: u64 = 2_000_000;
/// Buffers the sink must have taken before the destination counts as live.
const LIVE_AFTER_BUFFERS: u64 = 20;
/// How often a live destination reports its bitrate.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Attempts in a row that never went live before the destination is failed.
pub(super) const MAX_ATTEMPTS: u32 = 10;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a pusher tells its class (logged as `destination.status`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub status: &'static str,
    pub bitrate_kbps: Option<u32>,
    pub dropped_frames: u64,
    pub reason: Option<String>,
}

pub(super) type Feed = watch::Receiver<Option<broadcast::Sender<StreamFrame>>>;

/// Runs one destination until it is stopped (detached, the kill switch,
/// the class's end) or has failed `MAX_ATTEMPTS` times in a row.
pub(super) async fn run(
    target: PushTarget,
    mut feed: Feed,
    reports: mpsc::UnboundedSender<(protocol::DestinationId, Report)>,
    stop: CancellationToken,
) {
    let id = target.destination_id;
    let mut dropped = 0u64;
    let report =
        |status: &'static str, bitrate: Option<u32>, dropped: u64, reason: Option<String>| {
            let _ = reports.send((
                id,
                Report {
                    status,
                    bitrate_kbps: bitrate,
                    dropped_frames: dropped,
                    reason,
                },
            ));
        };
    let mut failures = 0u32;
    report("connecting", None, 0, None);
    loop {
        // the program this destination takes (none while it is not running)
        let source = loop {
            if let Some(s) = feed.borrow_and_update().clone() {
                break s;
            }
            tokio::select! {
                _ = stop.cancelled() => {
                    report("stopped", None, dropped, Some("stopped".into()));
                    return;
                }
                changed = feed.changed() => if changed.is_err() { return },
            }
        };
        let outcome = attempt(&target, &source, &stop, &mut dropped, &report).await;
        match outcome {
            Outcome::Stopped => {
                report("stopped", None, dropped, Some("stopped".into()));
                return;
            }
            Outcome::ProgramEnded => {
                failures = 0;
                report(
                    "retrying",
                    None,
                    dropped,
                    Some("the program stopped".into()),
                );
                continue;
            }
            Outcome::Failed { reason, was_live } => {
                failures = if was_live { 1 } else { failures + 1 };
                tracing::warn!(destination_id = %id, failures, %reason, "push failed");
                if failures >= MAX_ATTEMPTS {
                    report("failed", None, dropped, Some(reason));
                    return;
                }
                report("retrying", None, dropped, Some(reason));
                let wait = backoff(failures);
                tokio::select! {
                    _ = stop.cancelled() => {
                        report("stopped", None, dropped, Some("stopped".into()));
                        return;
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
                report("connecting", None, dropped, None);
            }
        }
    }
}

/// The wait before attempt `n + 1`: 1 s doubling to 30 s, ±20 % jitter.
pub(super) fn backoff(failures: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(MAX_BACKOFF);
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let jitter = 0.8 + 0.4 * (r % 10_000) as f64 / 10_000.0;
    base.mul_f64(jitter)
}

enum Outcome {
    Stopped,
    ProgramEnded,
    Failed { reason: String, was_live: bool },
}

/// One connection: build, push until it fails or is stopped, tear down.
async fn attempt(
    target: &PushTarget,
    source: &broadcast::Sender<StreamFrame>,
    stop: &CancellationToken,
    dropped: &mut u64,
    report: &impl Fn(&'static str, Option<u32>, u64, Option<String>),
) -> Outcome {
    let mut frames = source.subscribe();
    let t = target.clone();
    let built = tokio::task::spawn_blocking(move || Push::build(&t)).await;
    let push = match built {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            return Outcome::Failed {
                reason: e,
                was_live: false,
            };
        }
        Err(e) => {
            return Outcome::Failed {
                reason: e.to_string(),
                was_live: false,
            };
        }
    };
    let Some(bus) = push.pipeline.bus() else {
        push.teardown().await;
        return Outcome::Failed {
            reason: "no bus".into(),
            was_live: false,
        };
    };
    let mut bus = bus.stream();
    let mut push = push;
    let mut live = false;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_report = (Instant::now(), 0u64);
    let outcome = loop {
        tokio::select! {
            _ = stop.cancelled() => break Outcome::Stopped,
            f = frames.recv() => match f {
                Ok(f) => {
                    if !push.push(f) {
                        *dropped += 1;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    *dropped += n;
                    push.need_key = true;
                }
                Err(broadcast::error::RecvError::Closed) => break Outcome::ProgramEnded,
            },
            m = bus.next() => match m {
                Some(m) => match m.view() {
                    gst::MessageView::Error(e) => break Outcome::Failed {
                        reason: e.error().to_string(),
                        was_live: live,
                    },
                    gst::MessageView::Eos(_) => break Outcome::Failed {
                        reason: "the connection ended".into(),
                        was_live: live,
                    },
                    _ => {}
                },
                None => break Outcome::Failed { reason: "the pipeline's bus closed".into(), was_live: live },
            },
            _ = tick.tick() => {
                let sent = push.sent_bytes.load(Ordering::Relaxed);
                if !live && push.sent_buffers.load(Ordering::Relaxed) >= LIVE_AFTER_BUFFERS {
                    live = true;
                    last_report = (Instant::now(), sent);
                    tracing::info!(destination_id = %target.destination_id, "destination live");
                    report("live", None, *dropped, None);
                } else if live && last_report.0.elapsed() >= REPORT_EVERY {
                    let secs = last_report.0.elapsed().as_secs_f64();
                    let kbps = ((sent - last_report.1) as f64 * 8.0 / secs / 1000.0) as u32;
                    last_report = (Instant::now(), sent);
                    report("live", Some(kbps), *dropped, None);
                }
            }
        }
    };
    push.teardown().await;
    outcome
}

/// A destination's pipeline while it runs.
struct Push {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    /// Running time of the program that is time 0 of this push.
    base: Option<gst::ClockTime>,
    /// Video waits for a keyframe (at the start and after a loss).
    need_key: bool,
    video_caps: bool,
    audio_caps: bool,
    sent_bytes: Arc<AtomicU64>,
    sent_buffers: Arc<AtomicU64>,
}

impl Push {
    fn build(target: &PushTarget) -> Result<Push, String> {
        gst::init().map_err(|e| e.to_string())?;
        let src = "format=time is-live=false block=false max-bytes=4000000";
        let desc = match target.kind {
            PushKind::Rtmp | PushKind::Rtmps => format!(
                "appsrc name=v {src} ! h264parse ! video/x-h264,stream-format=avc,alignment=au ! queue ! mux.video \
                 appsrc name=a {src} ! aacparse ! audio/mpeg,mpegversion=4,stream-format=raw ! queue ! mux.audio \
                 flvmux name=mux streamable=true ! rtmp2sink name=sink sync=false async=false"
            ),
            PushKind::Srt => format!(
                "appsrc name=v {src} ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! queue ! mux. \
                 appsrc name=a {src} ! aacparse ! audio/mpeg,mpegversion=4,stream-format=adts ! queue ! mux. \
                 mpegtsmux name=mux alignment=7 ! srtsink name=sink sync=false async=false wait-for-connection=false"
            ),
        };
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| e.to_string())?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_string())?;
        let by = |n: &str| pipeline.by_name(n).ok_or_else(|| format!("no element {n}"));
        let sink = by("sink")?;
        // set as a property, never spliced into the description: the URL is
        // the customer's (and holds the stream key)
        match target.kind {
            PushKind::Rtmp | PushKind::Rtmps => sink.set_property("location", &target.url),
            PushKind::Srt => sink.set_property("uri", &target.url),
        }
        let video = by("v")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| "v is not an appsrc".to_string())?;
        let audio = by("a")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| "a is not an appsrc".to_string())?;
        let sent_bytes = Arc::new(AtomicU64::new(0));
        let sent_buffers = Arc::new(AtomicU64::new(0));
        if let Some(pad) = sink.static_pad("sink") {
            let (bytes, buffers) = (sent_bytes.clone(), sent_buffers.clone());
            pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, info| {
                    let n = match &info.data {
                        Some(gst::PadProbeData::Buffer(b)) => b.size(),
                        Some(gst::PadProbeData::BufferList(l)) => l.calculate_size(),
                        _ => 0,
                    };
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                    buffers.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                },
            );
        }
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(format!("could not start the push: {e}"));
        }
        Ok(Push {
            pipeline,
            video,
            audio,
            base: None,
            need_key: true,
            video_caps: false,
            audio_caps: false,
            sent_bytes,
            sent_buffers,
        })
    }

    /// Hands one sample to the pipeline, restamped from this push's start.
    /// False when it was dropped because the destination is behind.
    fn push(&mut self, f: StreamFrame) -> bool {
        let Some(buf) = f.sample.buffer_owned() else {
            return true;
        };
        // stamps in running time: an encoder may shift its segment (x264
        // starts at 1000 h), and audio and video must share one clock
        let Some(segment) = f
            .sample
            .segment()
            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        else {
            return true;
        };
        let Some(pts) = buf.pts().and_then(|t| segment.to_running_time(t)) else {
            return true;
        };
        let dts = buf.dts().and_then(|t| segment.to_running_time(t));
        let src = if f.video { &self.video } else { &self.audio };
        if src.current_level_bytes() > MAX_QUEUED {
            if f.video {
                self.need_key = true;
            }
            return false;
        }
        if f.video {
            let key = !buf.flags().contains(gst::BufferFlags::DELTA_UNIT);
            if self.need_key && !key {
                return true;
            }
            self.need_key = false;
            if self.base.is_none() {
                self.base = Some(dts.unwrap_or(pts).min(pts));
            }
        }
        // audio starts with the first keyframe
        let Some(base) = self.base else { return true };
        if pts < base {
            return true;
        }
        let caps_set = if f.video {
            &mut self.video_caps
        } else {
            &mut self.audio_caps
        };
        if !*caps_set {
            if let Some(caps) = f.sample.caps() {
                src.set_caps(Some(&caps.to_owned()));
            }
            *caps_set = true;
        }
        let mut buf = buf;
        {
            let b = buf.make_mut();
            b.set_pts(pts - base);
            b.set_dts(dts.map(|d| d.checked_sub(base).unwrap_or(gst::ClockTime::ZERO)));
        }
        let _ = src.push_buffer(buf);
        true
    }

    /// Stops the pipeline off the async threads (a stuck socket must not
    /// hold a runtime thread).
    async fn teardown(self) {
        let pipeline = self.pipeline;
        let _ = tokio::task::spawn_blocking(move || {
            let _ = pipeline.set_state(gst::State::Null);
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling_with_jitter() {
        for n in 1..=12 {
            let b = backoff(n);
            let base = FIRST_BACKOFF
                .saturating_mul(1 << (n - 1).min(8))
                .min(MAX_BACKOFF);
            assert!(
                b >= base.mul_f64(0.8) && b <= base.mul_f64(1.2),
                "{n}: {b:?}"
            );
        }
        assert!(backoff(12) <= MAX_BACKOFF.mul_f64(1.2));
    }
}
