//! Event time. Postgres keeps microseconds, so events are stamped at
//! microsecond precision: an event's `occurred_at` then survives storage
//! exactly, and a state folded from core's copy equals the edge's.

use chrono::{DateTime, SubsecRound, Utc};

pub(crate) fn event_time() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
