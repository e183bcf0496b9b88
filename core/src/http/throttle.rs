//! Token buckets that answer 429 with `Retry-After` early instead of letting
//! a burst through: the console's writes (per user), sign-in (per account
//! and per address, counting failures), and the routes that need no account
//! (public watch, public replay, QR codes: per address). Kept in this
//! process's memory: a limit is a guard against bursts, not an account of
//! record.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::http::error::{ApiError, ApiResult};

/// A bucket's shape: how many at once, and how many come back a second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub burst: f64,
    pub per_sec: f64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets of one shape, one per key.
pub(crate) struct Buckets<K> {
    shape: Shape,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq> Buckets<K> {
    pub(crate) fn new(shape: Shape) -> Self {
        Buckets {
            shape,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key`, or answers 429 with how long to wait.
    pub(crate) fn take(&self, key: K) -> ApiResult<()> {
        self.with(key, Instant::now(), true)
    }

    /// Whether `key` has a token left, without taking it.
    pub(crate) fn check(&self, key: K) -> ApiResult<()> {
        self.with(key, Instant::now(), false)
    }

    fn with(&self, key: K, now: Instant, take: bool) -> ApiResult<()> {
        let Shape { burst, per_sec } = self.shape;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            // a flood of distinct keys: forget the buckets that have refilled
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let b = map.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            if take {
                b.tokens -= 1.0;
            }
            Ok(())
        } else {
            let wait = ((1.0 - b.tokens) / per_sec).ceil().max(1.0) as u64;
            Err(ApiError::RateLimited {
                retry_after_secs: wait,
            })
        }
    }
}

/// Failed sign-ins an account may have in a row before it must wait: 5,
/// then one more a minute.
const LOGIN_ACCOUNT: Shape = Shape {
    burst: 5.0,
    per_sec: 1.0 / 60.0,
};
/// Failed sign-ins from one address (many accounts tried): 100, then one a
/// second. Generous, because a campus often signs in from behind one
/// address and students mistype; the per-account limit does the rest.
const LOGIN_ADDRESS: Shape = Shape {
    burst: 100.0,
    per_sec: 1.0,
};
/// Requests to the routes that need no account, per address (a class
/// behind one campus address loads its QR codes at once).
const PUBLIC: Shape = Shape {
    burst: 300.0,
    per_sec: 50.0,
};
/// How long a sign-in waits for a password check slot before 503.
const VERIFY_WAIT: Duration = Duration::from_secs(2);

/// Sign-in and public-route limits.
pub struct Throttles {
    login_accounts: Buckets<String>,
    login_addresses: Buckets<IpAddr>,
    public: Buckets<IpAddr>,
    /// Password checks at once (argon2 takes 19 MiB and a core's worth of
    /// time each): past this, sign-in sheds load with 503.
    verifying: Semaphore,
}

impl Default for Throttles {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Throttles {
            login_accounts: Buckets::new(LOGIN_ACCOUNT),
            login_addresses: Buckets::new(LOGIN_ADDRESS),
            public: Buckets::new(PUBLIC),
            verifying: Semaphore::new(cores.max(2)),
        }
    }
}

impl Throttles {
    /// May this sign-in be tried? Refused (429) while the account or the
    /// address has used up its failures.
    pub fn login_admit(&self, email: &str, from: Option<IpAddr>) -> ApiResult<()> {
        if let Some(ip) = from {
            self.login_addresses.check(ip)?;
        }
        self.login_accounts.check(email.to_owned())
    }

    /// A sign-in failed: it counts against the account and the address.
    pub fn login_failed(&self, email: &str, from: Option<IpAddr>) {
        if let Some(ip) = from {
            let _ = self.login_addresses.take(ip);
        }
        let _ = self.login_accounts.take(email.to_owned());
    }

    /// A slot to check a password in, or 503 when all are busy for too long.
    pub async fn verify_slot(&self) -> ApiResult<SemaphorePermit<'_>> {
        match tokio::time::timeout(VERIFY_WAIT, self.verifying.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::unavailable(
                "sign_in_busy",
                "too many sign-ins at once; try again in a moment",
            )),
        }
    }

    /// One request to a route that needs no account.
    pub fn public(&self, from: Option<IpAddr>) -> ApiResult<()> {
        match from {
            Some(ip) => self.public.take(ip),
            None => Ok(()),
        }
    }
}

/// The caller's address, when the server knows it (`ConnectInfo`); `None`
/// when the router runs without a socket (in-process tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // the extractor also reads axum's MockConnectInfo (tests)
        Ok(ClientAddr(
            ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
                .await
                .ok()
                .map(|c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_past_the_bucket_is_refused_with_a_wait() {
        let b = Buckets::new(Shape {
            burst: 3.0,
            per_sec: 0.1,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            b.with(1, t0, true).expect("within the burst");
        }
        match b.with(1, t0, true) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 10),
            other => panic!("expected 429, got {other:?}"),
        }
        b.with(2, t0, true).expect("another key has its own bucket");
        b.with(1, t0 + Duration::from_secs(10), true)
            .expect("refilled after the wait");
    }

    #[test]
    fn check_does_not_take() {
        let b = Buckets::new(Shape {
            burst: 1.0,
            per_sec: 0.01,
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            b.with("a", t0, false).expect("a check takes nothing");
        }
        b.with("a", t0, true).expect("the one token");
        assert!(b.with("a", t0, false).is_err());
    }

    #[test]
    fn failed_sign_ins_lock_the_account_then_the_address() {
        let t = Throttles::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..5 {
            t.login_admit("a@x.test", Some(ip)).expect("admitted");
            t.login_failed("a@x.test", Some(ip));
        }
        assert!(
            t.login_admit("a@x.test", Some(ip)).is_err(),
            "account locked"
        );
        // other accounts from the same address go on until the address is spent
        for i in 0..95 {
            let e = format!("u{i}@x.test");
            t.login_admit(&e, Some(ip)).expect("admitted");
            t.login_failed(&e, Some(ip));
        }
        assert!(
            t.login_admit("fresh@x.test", Some(ip)).is_err(),
            "address locked"
        );
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        t.login_admit("fresh@x.test", Some(other))
            .expect("another address is fine");
    }
}
