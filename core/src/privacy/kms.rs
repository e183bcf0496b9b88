//! Key encryption keys. A person's data key is only ever stored wrapped by a
//! key-encryption key (KEK) that a [`Kms`] holds. The default is a key file
//! on core's disk ([`LocalKms`]); a real KMS (Vault transit, a cloud KMS,
//! an HSM) is another implementation of the trait.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use sha2::Digest;

/// Wraps and unwraps data keys. `context` binds a wrapped key to what it
/// is for (tenant and person): a wrapped key moved to another row does not
/// unwrap.
pub(crate) trait Kms: Send + Sync {
    /// Names the KEK, stored beside each key it wrapped.
    fn id(&self) -> &str;
    fn wrap(&self, key: &[u8], context: &[u8]) -> anyhow::Result<Vec<u8>>;
    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> anyhow::Result<Vec<u8>>;
}

/// A KEK in a local file (64 hex digits, mode 0600), made on first start.
pub(crate) struct LocalKms {
    id: String,
    key: RandomizedNonceKey,
}

impl LocalKms {
    pub(crate) fn load_or_create(path: &Path) -> anyhow::Result<LocalKms> {
        let bytes = match std::fs::read_to_string(path) {
            Ok(text) => hex::decode(text.trim())
                .map_err(|e| anyhow::anyhow!("{}: not a hex key: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                aws_lc_rs::rand::fill(&mut key)
                    .map_err(|_| anyhow::anyhow!("no randomness for a new KEK"))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                if !create_private(path, format!("{}\n", hex::encode(&key)).as_bytes())? {
                    // another process made it first: use theirs
                    return LocalKms::load_or_create(path);
                }
                tracing::info!(path = %path.display(), "made a new key-encryption key");
                key
            }
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        };
        LocalKms::from_bytes(&bytes)
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> anyhow::Result<LocalKms> {
        anyhow::ensure!(bytes.len() == 32, "a KEK is 32 bytes, not {}", bytes.len());
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| anyhow::anyhow!("unusable KEK"))?;
        let id = format!("local:{}", &hex::encode(sha2::Sha256::digest(bytes))[..16]);
        Ok(LocalKms { id, key })
    }
}

impl Kms for LocalKms {
    fn id(&self) -> &str {
        &self.id
    }

    fn wrap(&self, key: &[u8], context: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut out = key.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(context), &mut out)
            .map_err(|_| anyhow::anyhow!("wrapping a data key failed"))?;
        let mut wrapped = nonce.as_ref().to_vec();
        wrapped.extend_from_slice(&out);
        Ok(wrapped)
    }

    fn unwrap(&self, wrapped: &[u8], context: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(wrapped.len() > NONCE_LEN, "a wrapped key too short");
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("bad nonce in a wrapped key"))?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| anyhow::anyhow!("a wrapped key does not open with {}", self.id))?;
        Ok(plain.to_vec())
    }
}

const SEALED_BEGIN: &str = "-----BEGIN CLASSROOM SEALED SECRET-----";
const SEALED_END: &str = "-----END CLASSROOM SEALED SECRET-----";

/// A secret file's text, sealed under the KEK: the secret's `purpose` and
/// the KEK's id in the clear, the secret wrapped (with `purpose` as its
/// associated data, so a sealed signing key does not open as anything
/// else).
pub(crate) fn seal_secret(kms: &dyn Kms, purpose: &str, secret: &[u8]) -> anyhow::Result<String> {
    use base64::Engine;
    let wrapped = kms.wrap(secret, purpose.as_bytes())?;
    Ok(format!(
        "{SEALED_BEGIN}\npurpose: {purpose}\nkek: {}\n\n{}\n{SEALED_END}\n",
        kms.id(),
        base64::engine::general_purpose::STANDARD.encode(wrapped)
    ))
}

/// The secret in a sealed file's text; None when the text is not sealed
/// (a plain file from before secrets were sealed).
pub(crate) fn open_secret(
    kms: &dyn Kms,
    purpose: &str,
    text: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    use base64::Engine;
    let Some(body) = text.trim().strip_prefix(SEALED_BEGIN) else {
        return Ok(None);
    };
    let body = body
        .trim_end()
        .strip_suffix(SEALED_END)
        .ok_or_else(|| anyhow::anyhow!("a sealed secret without its end line"))?;
    let (headers, data) = body
        .trim()
        .split_once("\n\n")
        .ok_or_else(|| anyhow::anyhow!("a sealed secret without its headers"))?;
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .map(str::trim)
    };
    anyhow::ensure!(
        header("purpose") == Some(purpose),
        "the file holds a {} secret, not a {purpose}",
        header("purpose").unwrap_or("unnamed")
    );
    let kek = header("kek").unwrap_or_default();
    anyhow::ensure!(
        kek == kms.id(),
        "the secret is sealed under {kek}, and this core holds {}",
        kms.id()
    );
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| anyhow::anyhow!("a sealed secret is not base64: {e}"))?;
    kms.unwrap(&wrapped, purpose.as_bytes()).map(Some)
}

/// Makes a file only its owner may read, whole or not at all; false when
/// the file exists already (it is never replaced).
fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_key_opens_only_with_its_kek_and_its_context() {
        let kms = LocalKms::from_bytes(&[7u8; 32]).unwrap();
        let other = LocalKms::from_bytes(&[8u8; 32]).unwrap();
        let wrapped = kms.wrap(&[1u8; 32], b"tenant/user").unwrap();
        assert_ne!(&wrapped[NONCE_LEN..NONCE_LEN + 32], &[1u8; 32]);
        assert_eq!(kms.unwrap(&wrapped, b"tenant/user").unwrap(), vec![1u8; 32]);
        assert!(kms.unwrap(&wrapped, b"tenant/other-user").is_err());
        assert!(other.unwrap(&wrapped, b"tenant/user").is_err());
        assert_ne!(kms.id(), other.id());
    }

    #[test]
    fn a_sealed_secret_hides_its_bytes_and_opens_only_for_its_purpose_and_kek() {
        let kms = LocalKms::from_bytes(&[7u8; 32]).unwrap();
        let secret =
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        let text = seal_secret(&kms, "signing-key", secret).unwrap();
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(text.contains("purpose: signing-key"), "{text}");
        assert_eq!(
            open_secret(&kms, "signing-key", &text).unwrap().as_deref(),
            Some(&secret[..])
        );
        assert!(open_secret(&kms, "nats-seed", &text).is_err());
        let other = LocalKms::from_bytes(&[8u8; 32]).unwrap();
        assert!(open_secret(&other, "signing-key", &text).is_err());
        let plain = std::str::from_utf8(secret).unwrap();
        assert_eq!(open_secret(&kms, "signing-key", plain).unwrap(), None);
    }

    #[test]
    fn the_key_file_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek.key");
        let a = LocalKms::load_or_create(&path).unwrap();
        let b = LocalKms::load_or_create(&path).unwrap();
        assert_eq!(a.id(), b.id(), "the second start reads the same key");
        let wrapped = a.wrap(&[3u8; 32], b"c").unwrap();
        assert_eq!(b.unwrap(&wrapped, b"c").unwrap(), vec![3u8; 32]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
