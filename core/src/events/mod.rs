//! The event backbone on core's side: the hub stream, the ingest consumer
//! that writes Postgres, and reading the log back.

pub mod hub_stream;
pub mod ingest;
pub mod routes;
pub mod store;
