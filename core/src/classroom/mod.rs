//! The live classroom through core: every class command route (the table in
//! `protocol::api::CLASS_ROUTES`) forwarded to the session's home edge, and
//! slide decks.

pub(crate) mod commands;
pub(crate) mod decks;
