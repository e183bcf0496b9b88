//! The composer and recorder: every live session this edge is home to gets
//! a program (GStreamer: the scene, layout, slide, whiteboard and the
//! consenting participants' media, 1280x720 at 30 fps) cut into MP4
//! segments in a local spool, uploaded to object storage, each one a
//! `recording.segment` event with its media time range and checksum.
//!
//! Media time is one clock for the whole session: ms since the first
//! `recording.armed`. A recorder run (from arm to finalize, a crash, the kill
//! switch or a full disk) starts at an offset on that clock; what no run
//! covered is a `recording.gap` event.
//!
//! Arming happens before `session.started` is appended (`prepare`), so a
//! session that requires recording never starts without it.
//!
//! The recorder also captions the class live (`captions.rs`): the mix it
//! records, transcribed on the side, as `caption.segment` events on the same
//! media clock.

mod captions;
pub mod layout;
pub mod pipeline;
pub mod raster;
pub(crate) mod spool;
mod task;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::ObjectStore;
use protocol::state::SessionState;
use protocol::{SessionId, TenantId};
use tokio::sync::{mpsc, oneshot};

use crate::mesh::Uplink;
use crate::runtime::registry::Registry;
use crate::runtime::session::SessionHandle;
use crate::sfu::Sfu;

pub use captions::{CaptionConfig, Captions};
pub use task::{Control, Manifest, ManifestAudio, ManifestGap, ManifestSegment};

#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub enabled: bool,
    /// Segments are written here (one folder per session) before upload.
    pub spool: PathBuf,
    /// Below this much free space in the spool the recorder stops (and
    /// says so); the class goes on.
    pub min_free_mb: u64,
}

#[derive(Clone)]
pub struct Recorders {
    inner: Arc<Inner>,
}

struct Inner {
    config: RecorderConfig,
    /// Seals every recording object to its tenant's key.
    store: Arc<dyn ObjectStore>,
    /// The tenants' public keys, from the classes core started here.
    keys: Arc<hosting::sealed::Recipients>,
    sfu: Sfu,
    /// Where the program feed goes (the relay), when there is one.
    uplink: Uplink,
    http: reqwest::Client,
    live: Mutex<HashMap<SessionId, mpsc::Sender<Control>>>,
    captions: Captions,
    /// The classes' destinations and their pushers.
    fanout: crate::fanout::Fanout,
}

/// A program built and playing, not yet attached to its session.
pub struct Prepared {
    program: pipeline::Program,
    /// Wall-clock time of the program's running time 0.
    started_at: DateTime<Utc>,
    first_index: u32,
}

/// What a re-armed recorder continues from.
#[derive(Debug, Clone)]
pub struct Resume {
    /// Media time 0 of the session's recording.
    pub armed_at: DateTime<Utc>,
    /// Where the last run's recording ends (ms of media time).
    pub recorded_to_ms: u64,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error("recording is turned off on this edge")]
    Disabled,
    #[error("the spool has {free_mb} MB free, below the {min_mb} MB minimum")]
    DiskFull { free_mb: u64, min_mb: u64 },
    #[error("the recorder could not start: {0}")]
    Pipeline(String),
}

impl Recorders {
    /// `store` is the plain object store; recordings go into it sealed.
    pub fn new(
        config: RecorderConfig,
        store: Arc<dyn ObjectStore>,
        sfu: Sfu,
        uplink: Uplink,
        captions: Captions,
        http: reqwest::Client,
    ) -> Recorders {
        let keys = Arc::new(hosting::sealed::Recipients::default());
        let store: Arc<dyn ObjectStore> =
            Arc::new(hosting::sealed::SealedStore::new(store, keys.clone()));
        Recorders {
            inner: Arc::new(Inner {
                config,
                store,
                keys,
                sfu,
                uplink,
                http,
                live: Mutex::new(HashMap::new()),
                captions,
                fanout: Default::default(),
            }),
        }
    }

    pub fn sfu(&self) -> &Sfu {
        &self.inner.sfu
    }

    pub fn uplink(&self) -> &Uplink {
        &self.inner.uplink
    }

    pub fn config(&self) -> &RecorderConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    pub fn captions(&self) -> &Captions {
        &self.inner.captions
    }

    pub(crate) fn fanout(&self) -> &crate::fanout::Fanout {
        &self.inner.fanout
    }

    /// Takes the tenant's recording key from a class's settings; a class
    /// without one is not recorded (nothing is ever stored in plain).
    fn learn_key(
        &self,
        tenant: TenantId,
        settings: &protocol::event::SessionSettings,
    ) -> Result<(), ArmError> {
        self.inner
            .keys
            .set(&tenant.to_string(), recipient_of(settings)?);
        Ok(())
    }

    fn spool_of(&self, session: SessionId) -> PathBuf {
        self.inner.config.spool.join(session.to_string())
    }

    /// Builds and starts a session's program. Nothing is logged yet.
    pub async fn prepare(
        &self,
        session: SessionId,
        first_index: u32,
    ) -> Result<Prepared, ArmError> {
        let config = &self.inner.config;
        if !config.enabled {
            return Err(ArmError::Disabled);
        }
        let dir = self.spool_of(session);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ArmError::Pipeline(format!("spool {}: {e}", dir.display())))?;
        let free_mb = free_mb(&dir);
        if free_mb < config.min_free_mb {
            return Err(ArmError::DiskFull {
                free_mb,
                min_mb: config.min_free_mb,
            });
        }
        let captions = self.inner.captions.wanted();
        let built = tokio::task::spawn_blocking(move || -> Result<Prepared, ArmError> {
            let program = pipeline::Program::new(&dir, first_index, captions)
                .map_err(|e| ArmError::Pipeline(e.to_string()))?;
            program
                .play()
                .map_err(|e| ArmError::Pipeline(e.to_string()))?;
            // the wall-clock instant of running time 0
            let running = program.running_ms();
            let started_at = Utc::now() - chrono::Duration::milliseconds(running as i64);
            Ok(Prepared {
                program,
                started_at,
                first_index,
            })
        })
        .await
        .map_err(|e| ArmError::Pipeline(e.to_string()))??;
        Ok(built)
    }

    /// Attaches a prepared program to its session: the task logs
    /// `recording.armed` (after `recording.gap` when resuming).
    pub async fn launch(
        &self,
        prepared: Prepared,
        handle: SessionHandle,
        registry: Registry,
        resume: Option<Resume>,
    ) {
        let (tx, rx) = mpsc::channel(64);
        if let Ok(mut live) = self.inner.live.lock() {
            live.insert(handle.id, tx);
        }
        let media = match self.inner.sfu.tap(handle.id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(session_id = %handle.id, error = %e, "no media tap; recording without participants");
                mpsc::channel(1).1
            }
        };
        let ctx = task::Context {
            recorders: self.clone(),
            handle,
            registry,
            spool: self.spool_of_any(),
        };
        tokio::spawn(task::run(ctx, prepared, resume, rx, media));
    }

    fn spool_of_any(&self) -> PathBuf {
        self.inner.config.spool.clone()
    }

    /// Re-arms a session recovered after a restart: leftovers in its spool
    /// are uploaded (finished segments) or dropped (the torn open one),
    /// what the crash cost is a gap, and a new run starts.
    pub async fn resume(&self, handle: SessionHandle, state: &SessionState, registry: Registry) {
        let session = handle.id;
        if let Err(e) = self.learn_key(state.tenant_id, &state.settings) {
            tracing::error!(session_id = %session, error = %e, "recorder not re-armed");
            task::alert(&handle, format!("recorder could not re-arm: {e}")).await;
            return;
        }
        let dir = self.spool_of(session);
        let salvaged = task::salvage(self, &handle, state, &dir).await;
        let next_index = salvaged.next_index;
        let resume = Resume {
            armed_at: state.recording.armed_at.unwrap_or(state.started_at),
            recorded_to_ms: salvaged.recorded_to_ms,
            reason: "edge_restart".into(),
        };
        if state.kill_switches.recording {
            tracing::info!(session_id = %session, "recording kill switch engaged; not re-armed");
            return;
        }
        match self.prepare(session, next_index).await {
            Ok(p) => self.launch(p, handle, registry, Some(resume)).await,
            Err(e) => {
                tracing::error!(session_id = %session, error = %e, "recorder not re-armed");
                task::alert(&handle, format!("recorder could not re-arm: {e}")).await;
            }
        }
    }

    /// Ends a session's recording: closes the open segment, uploads what is
    /// left and logs `recording.finalized`. Bounded: a stuck pipeline never
    /// holds up the end of a class.
    pub async fn finalize(&self, session: SessionId, within: Duration) -> Result<(), String> {
        self.inner.fanout.close(session);
        let tx = self
            .inner
            .live
            .lock()
            .ok()
            .and_then(|mut l| l.remove(&session));
        let Some(tx) = tx else { return Ok(()) };
        let (reply, rx) = oneshot::channel();
        if tx.send(Control::Finalize { reply }).await.is_err() {
            return Err("the recorder has stopped".into());
        }
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("the recorder stopped while finalizing".into()),
            Err(_) => Err(format!("finalizing took longer than {within:?}")),
        }
    }

    /// Throws a session's recording away (its start was aborted).
    pub async fn discard(&self, session: SessionId) {
        self.inner.fanout.close(session);
        let tx = self
            .inner
            .live
            .lock()
            .ok()
            .and_then(|mut l| l.remove(&session));
        if let Some(tx) = tx {
            let _ = tx.send(Control::Discard).await;
        }
        let dir = self.spool_of(session);
        let _ = tokio::fs::remove_dir_all(dir).await;
    }

    /// Drops a prepared program that never got a session.
    pub fn abandon(&self, prepared: Prepared, session: SessionId) {
        prepared.program.stop();
        let _ = std::fs::remove_dir_all(self.spool_of(session));
    }

    /// Sessions recording now.
    pub fn recording(&self) -> usize {
        self.inner.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    fn forget(&self, session: SessionId) {
        if let Ok(mut l) = self.inner.live.lock() {
            l.remove(&session);
        }
    }
}

/// Free space in MB of the file system holding `dir`.
pub fn free_mb(dir: &Path) -> u64 {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a
    // valid NUL-terminated string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return 0;
        }
        (s.f_bavail as u64).saturating_mul(s.f_frsize as u64) / (1024 * 1024)
    }
}

/// The object key of a session's recording files.
/// The key a class's recording is sealed to: the tenant's public key from
/// the class's settings; without a valid one the class is not recorded.
fn recipient_of(
    settings: &protocol::event::SessionSettings,
) -> Result<hosting::sealed::Recipient, ArmError> {
    let key = settings
        .recording_key
        .as_ref()
        .ok_or_else(|| ArmError::Pipeline("core sent no recording key for the tenant".into()))?;
    hosting::sealed::Recipient::from_hex(&key.x25519)
        .map_err(|e| ArmError::Pipeline(format!("the tenant's recording key: {e}")))
}

pub fn object_key(tenant: TenantId, session: SessionId, name: &str) -> String {
    format!("recordings/{tenant}/{session}/{name}")
}

impl crate::runtime::hooks::RecordingHooks for Recorders {
    fn prepare(
        &self,
        tenant: TenantId,
        session: SessionId,
        settings: &protocol::event::SessionSettings,
    ) -> futures::future::BoxFuture<'_, crate::runtime::hooks::ArmOutcome> {
        use crate::runtime::hooks::ArmOutcome;
        let keyed = if self.inner.config.enabled {
            self.learn_key(tenant, settings)
        } else {
            Ok(())
        };
        Box::pin(async move {
            if let Err(e) = keyed {
                return ArmOutcome::Failed(e.to_string());
            }
            match Recorders::prepare(self, session, 0).await {
                Ok(p) => ArmOutcome::Armed(Box::new(p)),
                Err(ArmError::Disabled) => ArmOutcome::Off,
                Err(e) => ArmOutcome::Failed(e.to_string()),
            }
        })
    }

    fn abandon(&self, armed: crate::runtime::hooks::Armed, session: SessionId) {
        if let Ok(p) = armed.downcast::<Prepared>() {
            Recorders::abandon(self, *p, session);
        }
    }

    fn launch(
        &self,
        armed: crate::runtime::hooks::Armed,
        handle: SessionHandle,
        registry: Registry,
    ) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            match armed.downcast::<Prepared>() {
                Ok(p) => Recorders::launch(self, *p, handle, registry, None).await,
                Err(_) => {
                    tracing::error!(session_id = %handle.id, "armed recording of another kind")
                }
            }
        })
    }

    fn resume<'a>(
        &'a self,
        handle: SessionHandle,
        state: &'a SessionState,
        registry: Registry,
    ) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(Recorders::resume(self, handle, state, registry))
    }

    fn discard(&self, session: SessionId) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(Recorders::discard(self, session))
    }

    fn finalize(
        &self,
        session: SessionId,
        within: Duration,
    ) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(Recorders::finalize(self, session, within))
    }

    fn destinations(
        &self,
        handle: SessionHandle,
        targets: Vec<protocol::control::PushTarget>,
    ) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let killed = handle
                .state()
                .await
                .map(|s| s.kill_switches.multistream)
                .unwrap_or(false);
            self.inner.fanout.set_targets(&handle, targets, killed);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::event::{RecordingKey, SessionSettings};

    #[test]
    fn a_class_is_recorded_only_with_a_valid_key_of_its_tenant() {
        let none = SessionSettings::default();
        assert!(matches!(recipient_of(&none), Err(ArmError::Pipeline(_))));
        let bad = SessionSettings {
            recording_key: Some(RecordingKey {
                x25519: "not hex".into(),
            }),
            ..Default::default()
        };
        assert!(matches!(recipient_of(&bad), Err(ArmError::Pipeline(_))));
        let key = hosting::sealed::Opener::generate().unwrap().recipient();
        let good = SessionSettings {
            recording_key: Some(RecordingKey {
                x25519: key.to_hex(),
            }),
            ..Default::default()
        };
        assert_eq!(recipient_of(&good).unwrap(), key);
    }
}
