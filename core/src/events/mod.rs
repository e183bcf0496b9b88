//! The event backbone on core's side: the hub stream, the ingest consumer
//! that writes Postgres, and reading the log back.

pub(crate) mod hub_stream;
pub(crate) mod ingest;
pub(crate) mod routes;
pub(crate) mod store;
pub(crate) mod triggers;
