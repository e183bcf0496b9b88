//! What the session runtime asks of whatever records classes, without
//! knowing anything of media: arm before `session.started` is logged (a
//! class that requires recording does not start unarmed), launch once the
//! writer runs, finalize before an end is applied, resume after a restart,
//! discard on an abort. The recorder implements it; the registry holds it.

use std::any::Any;
use std::time::Duration;

use futures::future::BoxFuture;
use protocol::event::SessionSettings;
use protocol::state::SessionState;
use protocol::{SessionId, TenantId};

use super::registry::Registry;
use super::session::SessionHandle;

/// Whatever the recorder armed for one class; only the recorder looks
/// inside.
pub(crate) type Armed = Box<dyn Any + Send>;

/// How arming went.
pub enum ArmOutcome {
    Armed(Armed),
    /// Recording is turned off on this edge.
    Off,
    /// Recording is on but cannot start (no disk, no pipeline).
    Failed(String),
}

pub trait RecordingHooks: Send + Sync + 'static {
    /// Arms a class of `tenant` started with `settings` (which carry the
    /// tenant's recording key).
    fn prepare(
        &self,
        tenant: TenantId,
        session: SessionId,
        settings: &SessionSettings,
    ) -> BoxFuture<'_, ArmOutcome>;
    /// The start did not happen after all: release what was armed.
    fn abandon(&self, armed: Armed, session: SessionId);
    fn launch(&self, armed: Armed, handle: SessionHandle, registry: Registry) -> BoxFuture<'_, ()>;
    fn resume<'a>(
        &'a self,
        handle: SessionHandle,
        state: &'a SessionState,
        registry: Registry,
    ) -> BoxFuture<'a, ()>;
    fn discard(&self, session: SessionId) -> BoxFuture<'_, ()>;
    fn finalize(&self, session: SessionId, within: Duration) -> BoxFuture<'_, Result<(), String>>;
    /// The destinations the class streams to now (the whole set).
    fn destinations(
        &self,
        handle: SessionHandle,
        targets: Vec<protocol::control::PushTarget>,
    ) -> BoxFuture<'_, ()>;
}
