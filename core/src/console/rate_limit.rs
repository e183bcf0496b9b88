//! Per-caller token buckets for the console's writes: an admin script gone
//! wrong, or a stolen token, gets 429 with `Retry-After` early instead of
//! filling the users table or the audit log. Kept in this process's memory:
//! a limit is a guard against bursts, not an account of record.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use protocol::UserId;

use crate::http::error::{ApiError, ApiResult};

/// What a bucket limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A change through the console: a user, a member, the settings.
    Write,
    /// A CSV import (each may create thousands of users).
    Import,
    /// A course roster upload (many memberships, no accounts).
    RosterImport,
}

impl Kind {
    /// (burst, refill per second)
    fn shape(self) -> (f64, f64) {
        match self {
            Kind::Write => (60.0, 20.0),
            Kind::Import => (3.0, 0.1),
            Kind::RosterImport => (60.0, 2.0),
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Default)]
pub struct ConsoleLimits {
    buckets: Mutex<HashMap<(UserId, Kind), Bucket>>,
}

impl ConsoleLimits {
    /// Takes one token for `user`, or answers 429 with how long to wait.
    pub fn take(&self, user: UserId, kind: Kind) -> ApiResult<()> {
        let (burst, rate) = kind.shape();
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            // a flood of distinct callers: forget the full buckets
            map.retain(|_, b| b.tokens < burst);
        }
        let b = map.entry((user, kind)).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / rate).ceil().max(1.0) as u64;
            Err(ApiError::RateLimited {
                retry_after_secs: wait,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_past_the_bucket_is_refused_with_a_wait() {
        let l = ConsoleLimits::default();
        let u = UserId::from_uuid(uuid::Uuid::from_u128(1));
        for _ in 0..3 {
            l.take(u, Kind::Import).expect("within the burst");
        }
        match l.take(u, Kind::Import) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert!(retry_after_secs >= 1),
            other => panic!("expected 429, got {other:?}"),
        }
        // another caller has their own bucket
        let v = UserId::from_uuid(uuid::Uuid::from_u128(2));
        l.take(v, Kind::Import).expect("a fresh bucket");
    }
}
