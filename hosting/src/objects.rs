//! Object storage named by a URL, the same way for core and every edge:
//! `file:///var/lib/classroom/objects` (or a plain path) is a directory on
//! this box; `s3://bucket` or `s3://bucket/prefix` is an S3 bucket, reached
//! at `AWS_ENDPOINT` (any S3 implementation: Garage, AWS, …) with
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_REGION` from the
//! environment, never from the command line. An S3 endpoint over plain
//! HTTP must be allowed explicitly (`AWS_ALLOW_HTTP=true`); over HTTPS a
//! private CA may be named with `OBJECT_STORE_CA` (PEM).
//!
//! There is no fallback: a store that cannot be opened or reached is an
//! error the service refuses to start on ([`check`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

/// The environment variable naming a CA (PEM) for an S3 endpoint over HTTPS.
pub const CA_ENV: &str = "OBJECT_STORE_CA";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object store URL {0:?}: expected file:///dir, a path, or s3://bucket[/prefix]")]
    Url(String),
    #[error("object store directory {}: {source}", path.display())]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("object store CA {}: {source}", path.display())]
    Ca {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("object store {url}: {source}")]
    Open {
        url: String,
        source: object_store::Error,
    },
    #[error("object store {url} is not reachable: {reason}")]
    Unreachable { url: String, reason: String },
}

/// Where objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// Reads `file:///dir`, a bare path, or `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> Result<Location, StoreError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = !bucket.is_empty()
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid {
                return Err(StoreError::Url(url.to_owned()));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if url.starts_with("file://") {
            let parsed = url::Url::parse(url).map_err(|_| StoreError::Url(url.to_owned()))?;
            let path = parsed
                .to_file_path()
                .map_err(|_| StoreError::Url(url.to_owned()))?;
            return Ok(Location::Dir(path));
        }
        if url.contains("://") || url.is_empty() {
            return Err(StoreError::Url(url.to_owned()));
        }
        Ok(Location::Dir(PathBuf::from(url)))
    }

    /// The URL form, for logs (no credentials are ever part of it).
    pub fn display(&self) -> String {
        match self {
            Location::Dir(p) => format!("file://{}", p.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// Opens the store at `location` (creating a directory if needed). Does no
/// network I/O: call [`check`] to know the store answers.
pub fn open(location: &Location) -> Result<Arc<dyn ObjectStore>, StoreError> {
    match location {
        Location::Dir(dir) => open_dir(dir),
        Location::S3 { bucket, prefix } => {
            let url = location.display();
            // (these options replace the client settings `from_env` read,
            // so the plain-HTTP allowance is carried over here)
            let allow_http = std::env::var("AWS_ALLOW_HTTP")
                .map(|v| v.eq_ignore_ascii_case("true"))
                .unwrap_or(false);
            let mut client = ClientOptions::new()
                .with_allow_http(allow_http)
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(120));
            if let Some(ca) = std::env::var_os(CA_ENV) {
                let path = PathBuf::from(ca);
                let pem = std::fs::read(&path).map_err(|source| StoreError::Ca {
                    path: path.clone(),
                    source,
                })?;
                let cert = object_store::Certificate::from_pem(&pem).map_err(|source| {
                    StoreError::Open {
                        url: url.clone(),
                        source,
                    }
                })?;
                client = client.with_root_certificate(cert);
            }
            // a short retry budget: callers (the recorder's uploader, the
            // artifact jobs) keep their own, longer, retries and report
            // what stays missing
            let retry = RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 4,
                retry_timeout: Duration::from_secs(20),
            };
            let s3 = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(|source| StoreError::Open { url, source })?;
            Ok(if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix.as_str()))
            })
        }
    }
}

fn open_dir(dir: &Path) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let io = |source| StoreError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|source| {
        StoreError::Open {
            url: format!("file://{}", dir.display()),
            source,
        }
    })?;
    Ok(Arc::new(fs))
}

/// Asks the store for an object that is not there: a signed, authorized
/// answer (found or not found) means the store is reachable with these
/// credentials; anything else (refused, timed out, forbidden, no such
/// bucket) is an error. Bounded by `within`.
pub async fn check(
    store: &Arc<dyn ObjectStore>,
    location: &Location,
    within: Duration,
) -> Result<(), StoreError> {
    let probe = ObjectPath::from(".reachable");
    let unreachable = |reason: String| StoreError::Unreachable {
        url: location.display(),
        reason,
    };
    match tokio::time::timeout(within, store.head(&probe)).await.ok() {
        None => Err(unreachable(format!("no answer within {within:?}"))),
        Some(Ok(_)) | Some(Err(object_store::Error::NotFound { .. })) => Ok(()),
        Some(Err(e)) => Err(unreachable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            Location::parse("file:///var/lib/x").unwrap(),
            Location::Dir("/var/lib/x".into())
        );
        assert_eq!(
            Location::parse("rel/dir").unwrap(),
            Location::Dir("rel/dir".into())
        );
        assert_eq!(
            Location::parse("s3://classroom").unwrap(),
            Location::S3 {
                bucket: "classroom".into(),
                prefix: String::new()
            }
        );
        let l = Location::parse("s3://classroom/campus-a/").unwrap();
        assert_eq!(
            l,
            Location::S3 {
                bucket: "classroom".into(),
                prefix: "campus-a".into()
            }
        );
        assert_eq!(l.display(), "s3://classroom/campus-a");
        for bad in ["", "s3://", "s3://Up_Case", "gs://bucket", "http://x/y"] {
            assert!(Location::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[tokio::test]
    async fn a_directory_store_is_reachable_and_an_s3_endpoint_that_refuses_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::Dir(dir.path().join("objects"));
        let store = open(&loc).unwrap();
        check(&store, &loc, Duration::from_secs(5)).await.unwrap();
        // a port nobody listens on: refused, reported, bounded in time
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // SAFETY: no other thread of this test reads the environment now
        unsafe {
            std::env::set_var("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"));
            std::env::set_var("AWS_ALLOW_HTTP", "true");
            std::env::set_var("AWS_ACCESS_KEY_ID", "GK000000000000000000000000");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "0".repeat(64));
            std::env::set_var("AWS_REGION", "garage");
        }
        let loc = Location::parse("s3://classroom").unwrap();
        let store = open(&loc).unwrap();
        let err = check(&store, &loc, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Unreachable { .. }),
            "unexpected: {err}"
        );
    }
}
