//! The classroom orchestrator: the schedule (courses, lessons, runs), the
//! edges classes run on, and session lifecycle.

pub mod courses;
pub mod edge_link;
pub mod edges;
pub mod relay_tokens;
pub mod sessions;
