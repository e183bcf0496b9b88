//! Per-caller token buckets for the console's writes: an admin script gone
//! wrong, or a stolen token, gets 429 with `Retry-After` early instead of
//! filling the users table or the audit log (buckets from `http::throttle`).

use protocol::UserId;

use crate::http::error::ApiResult;
use crate::http::throttle::{Buckets, Shape};

/// What a bucket limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A change through the console: a user, a member, the settings.
    Write,
    /// A CSV import (each may create thousands of users).
    Import,
    /// A course roster upload (many memberships, no accounts).
    RosterImport,
    /// A walk of the tenant's whole audit chain.
    AuditVerify,
    /// A data-subject request (an export or an erasure job).
    Subject,
    /// A retention sweep asked for now.
    Sweep,
    /// An analytics read (a class, a course, a student).
    Analytics,
    /// A replay page's progress beacon.
    Beacon,
}

impl Kind {
    /// (burst, refill per second)
    fn shape(self) -> (f64, f64) {
        match self {
            Kind::Write => (60.0, 20.0),
            Kind::Import => (3.0, 0.1),
            Kind::RosterImport => (60.0, 2.0),
            Kind::AuditVerify => (5.0, 0.2),
            Kind::Subject => (10.0, 0.2),
            Kind::Sweep => (5.0, 0.1),
            Kind::Analytics => (60.0, 10.0),
            Kind::Beacon => (20.0, 1.0),
        }
    }
}

/// The console's buckets, one set per kind.
pub struct ConsoleLimits {
    write: Buckets<UserId>,
    import: Buckets<UserId>,
    roster: Buckets<UserId>,
    verify: Buckets<UserId>,
    subject: Buckets<UserId>,
    sweep: Buckets<UserId>,
    analytics: Buckets<UserId>,
    beacon: Buckets<UserId>,
}

impl Default for ConsoleLimits {
    fn default() -> Self {
        let shape = |k: Kind| {
            let (burst, per_sec) = k.shape();
            Shape { burst, per_sec }
        };
        ConsoleLimits {
            write: Buckets::new(shape(Kind::Write)),
            import: Buckets::new(shape(Kind::Import)),
            roster: Buckets::new(shape(Kind::RosterImport)),
            verify: Buckets::new(shape(Kind::AuditVerify)),
            subject: Buckets::new(shape(Kind::Subject)),
            sweep: Buckets::new(shape(Kind::Sweep)),
            analytics: Buckets::new(shape(Kind::Analytics)),
            beacon: Buckets::new(shape(Kind::Beacon)),
        }
    }
}

impl ConsoleLimits {
    /// Takes one token for `user`, or answers 429 with how long to wait.
    pub fn take(&self, user: UserId, kind: Kind) -> ApiResult<()> {
        match kind {
            Kind::Write => &self.write,
            Kind::Import => &self.import,
            Kind::RosterImport => &self.roster,
            Kind::AuditVerify => &self.verify,
            Kind::Subject => &self.subject,
            Kind::Sweep => &self.sweep,
            Kind::Analytics => &self.analytics,
            Kind::Beacon => &self.beacon,
        }
        .take(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ApiError;

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
