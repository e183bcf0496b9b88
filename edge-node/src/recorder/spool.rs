//! The local spool and object storage: a closed segment is synced, renamed
//! from `.part`, hashed, and uploaded (with retries) before its event is
//! logged, so every `recording.segment` names an object that exists.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub(crate) enum SpoolError {
    #[error("spool file {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("object storage: {0}")]
    Store(String),
}

/// A finished segment on local disk.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// Makes a closed `.part` durable and visible: fsync, rename, checksum.
pub(crate) fn seal(part: &Path) -> Result<Finished, SpoolError> {
    let io = |e| SpoolError::Io(part.to_path_buf(), e);
    let f = std::fs::File::open(part).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    let done = match part.to_str().and_then(|s| s.strip_suffix(".part")) {
        Some(s) => PathBuf::from(s),
        None => part.to_path_buf(),
    };
    if done != part {
        std::fs::rename(part, &done).map_err(io)?;
    }
    if let Some(dir) = done.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    let data = std::fs::read(&done).map_err(|e| SpoolError::Io(done.clone(), e))?;
    Ok(Finished {
        bytes: data.len() as u64,
        sha256: hex::encode(Sha256::digest(&data)),
        path: done,
    })
}

/// Uploads a file to `key`, retrying with backoff for about a minute.
pub(crate) async fn upload(
    store: &Arc<dyn ObjectStore>,
    file: &Path,
    key: &str,
) -> Result<(), SpoolError> {
    let data = tokio::fs::read(file)
        .await
        .map_err(|e| SpoolError::Io(file.to_path_buf(), e))?;
    let path = ObjectPath::from(key);
    let mut delay = Duration::from_millis(200);
    let mut last = String::new();
    for _ in 0..10 {
        match store.put(&path, data.clone().into()).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                last = e.to_string();
                tracing::warn!(key, error = %last, "segment upload failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    Err(SpoolError::Store(last))
}

pub(crate) async fn upload_bytes(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    data: Vec<u8>,
) -> Result<(), SpoolError> {
    store
        .put(&ObjectPath::from(key), data.into())
        .await
        .map(|_| ())
        .map_err(|e| SpoolError::Store(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sealing_and_uploading_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("seg00003.mp4.part");
        std::fs::write(&part, b"not really an mp4").unwrap();
        let f = seal(&part).unwrap();
        assert_eq!(f.path, dir.path().join("seg00003.mp4"));
        assert!(!part.exists());
        assert_eq!(f.bytes, 17);
        assert_eq!(f.sha256, hex::encode(Sha256::digest(b"not really an mp4")));
        let store =
            hosting::objects::open(&hosting::objects::Location::Dir(dir.path().join("objects")))
                .unwrap();
        upload(&store, &f.path, "recordings/t/s/seg00003.mp4")
            .await
            .unwrap();
        let got = std::fs::read(dir.path().join("objects/recordings/t/s/seg00003.mp4")).unwrap();
        assert_eq!(got, b"not really an mp4");
    }
}
