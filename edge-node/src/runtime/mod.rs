//! The live session runtime: one task per session, the session's one writer.

pub mod batch;
pub mod hooks;
pub mod recovery;
pub mod registry;
pub mod session;
