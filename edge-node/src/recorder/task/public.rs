//! The public program of a recorded class: composed beside the recording
//! while a public destination is attached, from what the public may see
//! (the staff's consenting tracks, slides, screen and whiteboard).

use protocol::control::Audience;
use protocol::event::TrackSource;

use super::super::layout::Source;
use super::super::pipeline::{Codec, Program};
use super::{Task, video_codec};
use crate::sfu::TapCodec;

impl Task {
    /// Gives a recorded track an input in the public program too, when the
    /// public may see it: media of the class's staff only.
    pub(super) fn admit_public(&mut self, id: u32) {
        let session = self.session();
        let Some(public) = self
            .run
            .as_mut()
            .filter(|r| !r.finishing)
            .and_then(|r| r.public.as_mut())
        else {
            return;
        };
        let Some(t) = self.tracks.get(&id) else {
            return;
        };
        if t.input.is_none() || t.public_input.is_some() {
            return;
        }
        if !crate::policy::in_public_program(&self.state, t.participant) {
            return;
        }
        let (codec, source) = match (t.codec, t.source, t.slot) {
            (TapCodec::Opus, _, _) => (Codec::Opus, None),
            (c, TrackSource::Screen, _) => (video_codec(c), Some(Source::Screen)),
            (c, _, Some(slot)) => (video_codec(c), Some(Source::Camera(slot))),
            (_, _, None) => return,
        };
        let sfu = self.ctx.recorders.inner.sfu.clone();
        match public.add_input(codec, t.codec.payload_type(), source, None, move || {
            sfu.tap_keyframe(session, id)
        }) {
            Ok(input) => {
                if let Some(t) = self.tracks.get_mut(&id) {
                    t.public_input = Some(input);
                }
                if codec != Codec::Opus {
                    self.ctx.recorders.inner.sfu.tap_keyframe(session, id);
                }
            }
            Err(e) => tracing::warn!(track = id, error = %e, "track not in the public program"),
        }
    }

    /// Starts or stops the public program: it runs while a public
    /// destination is attached, the multistream kill switch is released and
    /// the recording program runs.
    pub(super) fn sync_public(&mut self) {
        let session = self.session();
        let want = *self.wants_public.borrow() && !self.state.kill_switches.multistream;
        let Some(run) = self.run.as_mut() else { return };
        let running = run.public.is_some();
        if want && !running && !run.finishing {
            let built = Program::public().and_then(|p| p.play().map(|_| p));
            match built {
                Ok(p) => {
                    tracing::info!("public program started");
                    self.ctx.recorders.fanout().set_feed(
                        session,
                        Audience::Public,
                        Some(p.stream()),
                    );
                    run.public = Some(p);
                }
                Err(e) => {
                    tracing::error!(error = %e, "the public program could not start");
                    return;
                }
            }
            let ids: Vec<u32> = self.tracks.keys().copied().collect();
            for id in ids {
                self.admit_public(id);
            }
            self.resync();
        } else if !want && running {
            self.stop_public();
        }
    }

    pub(super) fn stop_public(&mut self) {
        let Some(p) = self.run.as_mut().and_then(|r| r.public.take()) else {
            return;
        };
        self.ctx
            .recorders
            .fanout()
            .set_feed(self.session(), Audience::Public, None);
        p.stop();
        for t in self.tracks.values_mut() {
            t.public_input = None;
        }
        tracing::info!("public program stopped");
    }
}
