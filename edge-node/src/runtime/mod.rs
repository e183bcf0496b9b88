//! The live session runtime: one task per session, the session's one writer.

pub(crate) mod batch;
pub(crate) mod hooks;
pub(crate) mod recovery;
pub(crate) mod registry;
pub(crate) mod session;
