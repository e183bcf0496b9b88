//! Recordings sealed to their tenant at rest, in whatever object store holds
//! them (a directory, a shared S3 bucket).
//!
//! Every tenant has an X25519 key pair. Its public half travels to the edge
//! with each class it starts; its private half never leaves core (sealed
//! there under the KEK). An object under `recordings/<tenant>/` (or
//! `exports/<tenant>/`, an export made of them) is written
//! as a sealed object: a fresh ephemeral key agrees a secret with the
//! tenant's public key, HKDF-SHA256 turns it into an AES-256-GCM key for
//! this object alone, and the plain bytes are sealed in 64 KiB chunks (each
//! with its index, whether it is the last, and the object's name as
//! associated data: chunks can't be reordered, cut off or moved to another
//! object). So the edge can write recordings it can't read back, a key to
//! the bucket reads nothing but noise, and a range read opens only the
//! chunks it covers.
//!
//! Layout: `MAGIC` (8) · key id (16, the first half of SHA-256 of the
//! tenant's public key) · ephemeral public key (32) · nonce prefix (8), then
//! the chunks, each its ciphertext and a 16-byte tag.
//!
//! [`SealedStore`] wraps any [`ObjectStore`]: writes to a recordings path are
//! sealed (there is no plain fallback: without the tenant's key the write
//! fails), reads open them. Objects written before sealing existed (no
//! magic) are read as they are. Listings show stored sizes.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsBigEndian, Curve25519SeedBin};
use aws_lc_rs::hkdf;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

/// The first bytes of every sealed object.
pub const MAGIC: &[u8; 8] = b"CLSREC\x00\x01";
/// The fixed header before the first chunk.
pub const HEADER: usize = 8 + 16 + 32 + 8;
/// Plain bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const SEALED_CHUNK: usize = CHUNK + TAG;
const INFO: &[u8] = b"classroom recording seal v1";
/// The prefixes of every sealed path: `<prefix>/<tenant>/...`. Recordings,
/// and the data-subject exports made of them.
pub const PREFIXES: &[&str] = &["recordings", "exports"];

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed object")]
    NotSealed,
    #[error("sealed to key {0}, which this service does not hold")]
    UnknownKey(String),
    #[error("a sealed object that does not open (tampered, truncated or moved)")]
    Corrupt,
    #[error("bad key: {0}")]
    BadKey(String),
    #[error("no randomness")]
    Random,
}

/// A tenant's public key: what objects are sealed to.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient {
    public: [u8; 32],
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.kid_hex())
    }
}

fn kid_of(public: &[u8]) -> [u8; 16] {
    let d = digest::digest(&digest::SHA256, public);
    let mut kid = [0u8; 16];
    kid.copy_from_slice(&d.as_ref()[..16]);
    kid
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Recipient {
    /// From the 64 hex digits of an X25519 public key.
    pub fn from_hex(text: &str) -> Result<Recipient, SealError> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(SealError::BadKey("an X25519 key is 64 hex digits".into()));
        }
        let mut public = [0u8; 32];
        for (i, b) in public.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|e| SealError::BadKey(e.to_string()))?;
        }
        Ok(Recipient { public })
    }
    pub fn to_hex(&self) -> String {
        hex(&self.public)
    }
    pub fn kid(&self) -> [u8; 16] {
        kid_of(&self.public)
    }
    pub fn kid_hex(&self) -> String {
        hex(&self.kid())
    }
}

/// A tenant's private key: what opens its objects.
pub struct Opener {
    key: PrivateKey,
    public: [u8; 32],
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Opener({})", hex(&kid_of(&self.public)))
    }
}

impl Opener {
    /// A new key pair.
    pub fn generate() -> Result<Opener, SealError> {
        let key = PrivateKey::generate(&X25519).map_err(|_| SealError::Random)?;
        Opener::from_key(key)
    }
    /// From the 32 secret bytes [`Opener::secret`] gave.
    pub fn from_secret(secret: &[u8]) -> Result<Opener, SealError> {
        let key = PrivateKey::from_private_key(&X25519, secret)
            .map_err(|_| SealError::BadKey("not an X25519 secret".into()))?;
        Opener::from_key(key)
    }
    fn from_key(key: PrivateKey) -> Result<Opener, SealError> {
        let public = key
            .compute_public_key()
            .map_err(|_| SealError::BadKey("no public key".into()))?;
        let mut p = [0u8; 32];
        p.copy_from_slice(public.as_ref());
        Ok(Opener { key, public: p })
    }
    /// The secret bytes, to be stored wrapped.
    pub fn secret(&self) -> Result<Vec<u8>, SealError> {
        let seed: Curve25519SeedBin = self
            .key
            .as_be_bytes()
            .map_err(|_| SealError::BadKey("no secret bytes".into()))?;
        Ok(seed.as_ref().to_vec())
    }
    pub fn recipient(&self) -> Recipient {
        Recipient {
            public: self.public,
        }
    }
}

/// What a sealed object's header says.
#[derive(Clone)]
struct Header {
    bytes: [u8; HEADER],
}

impl Header {
    fn parse(b: &[u8]) -> Result<Header, SealError> {
        if b.len() < HEADER || &b[..8] != MAGIC {
            return Err(SealError::NotSealed);
        }
        let mut bytes = [0u8; HEADER];
        bytes.copy_from_slice(&b[..HEADER]);
        Ok(Header { bytes })
    }
    fn kid(&self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k.copy_from_slice(&self.bytes[8..24]);
        k
    }
    fn ephemeral(&self) -> &[u8] {
        &self.bytes[24..56]
    }
    fn prefix(&self) -> &[u8] {
        &self.bytes[56..64]
    }
}

fn object_key(shared: &[u8], ephemeral: &[u8], recipient: &[u8]) -> Result<LessSafeKey, SealError> {
    let mut salt = ephemeral.to_vec();
    salt.extend_from_slice(recipient);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(shared);
    let okm = prk
        .expand(&[INFO], &AES_256_GCM)
        .map_err(|_| SealError::BadKey("hkdf".into()))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn nonce(h: &Header, index: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(h.prefix());
    n[8..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(h: &Header, path: &str, last: bool) -> Vec<u8> {
    let mut a = h.bytes.to_vec();
    a.extend_from_slice(path.as_bytes());
    a.push(u8::from(last));
    a
}

/// Chunks of a sealed object holding `plain` bytes (never none: an empty
/// object is one empty last chunk).
fn chunks_for(plain: u64) -> u64 {
    plain.div_ceil(CHUNK as u64).max(1)
}

/// The stored size of a sealed object of `plain` bytes.
pub fn sealed_len(plain: u64) -> u64 {
    HEADER as u64 + plain + chunks_for(plain) * TAG as u64
}

/// The plain size of a sealed object stored as `sealed` bytes; None when no
/// sealed object has that size.
pub fn plain_len(sealed: u64) -> Option<u64> {
    let body = sealed.checked_sub(HEADER as u64)?;
    let chunks = body.div_ceil(SEALED_CHUNK as u64).max(1);
    let plain = body.checked_sub(chunks * TAG as u64)?;
    (sealed_len(plain) == sealed).then_some(plain)
}

/// Seals `plain` to `to` as the object named `path`.
pub fn seal(to: &Recipient, path: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
    let eph = PrivateKey::generate(&X25519).map_err(|_| SealError::Random)?;
    let eph_pub = eph.compute_public_key().map_err(|_| SealError::Random)?;
    let key = agreement::agree(
        &eph,
        UnparsedPublicKey::new(&X25519, &to.public),
        SealError::BadKey("agreement failed".into()),
        |shared| object_key(shared, eph_pub.as_ref(), &to.public),
    )?;
    let mut bytes = [0u8; HEADER];
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..24].copy_from_slice(&to.kid());
    bytes[24..56].copy_from_slice(eph_pub.as_ref());
    aws_lc_rs::rand::fill(&mut bytes[56..64]).map_err(|_| SealError::Random)?;
    let h = Header { bytes };
    let mut out = Vec::with_capacity(sealed_len(plain.len() as u64) as usize);
    out.extend_from_slice(&h.bytes);
    let n = chunks_for(plain.len() as u64) as usize;
    for i in 0..n {
        let part = &plain[(i * CHUNK).min(plain.len())..((i + 1) * CHUNK).min(plain.len())];
        let at = out.len();
        out.extend_from_slice(part);
        let tag = key
            .seal_in_place_separate_tag(
                nonce(&h, i as u32),
                Aad::from(aad(&h, path, i + 1 == n)),
                &mut out[at..],
            )
            .map_err(|_| SealError::Corrupt)?;
        out.extend_from_slice(tag.as_ref());
    }
    Ok(out)
}

/// Opens chunks of one sealed object: made from its header once.
struct ChunkOpener {
    header: Header,
    key: LessSafeKey,
    path: String,
    /// The index of the object's last chunk.
    last: u64,
}

impl ChunkOpener {
    fn new(with: &Opener, header: Header, path: &str, plain: u64) -> Result<Self, SealError> {
        if header.kid() != kid_of(&with.public) {
            return Err(SealError::UnknownKey(hex(&header.kid())));
        }
        let key = agreement::agree(
            &with.key,
            UnparsedPublicKey::new(&X25519, header.ephemeral()),
            SealError::Corrupt,
            |shared| object_key(shared, header.ephemeral(), &with.public),
        )?;
        Ok(ChunkOpener {
            header,
            key,
            path: path.to_owned(),
            last: chunks_for(plain) - 1,
        })
    }

    /// Opens chunk `index` in place; the plain bytes are `sealed`'s first
    /// `len - 16`.
    fn open_in_place(&self, index: u64, sealed: &mut [u8]) -> Result<usize, SealError> {
        if index > self.last || index > u64::from(u32::MAX) {
            return Err(SealError::Corrupt);
        }
        let plain = self
            .key
            .open_in_place(
                nonce(&self.header, index as u32),
                Aad::from(aad(&self.header, &self.path, index == self.last)),
                sealed,
            )
            .map_err(|_| SealError::Corrupt)?;
        Ok(plain.len())
    }
}

/// Opens a whole sealed object named `path`.
pub fn open(with: &Opener, path: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let header = Header::parse(sealed)?;
    let plain = plain_len(sealed.len() as u64).ok_or(SealError::Corrupt)?;
    let opener = ChunkOpener::new(with, header, path, plain)?;
    let mut out = sealed[HEADER..].to_vec();
    let mut kept = 0;
    for (i, at) in (0..out.len()).step_by(SEALED_CHUNK).enumerate() {
        let end = (at + SEALED_CHUNK).min(out.len());
        let n = opener.open_in_place(i as u64, &mut out[at..end])?;
        out.copy_within(at..at + n, kept);
        kept += n;
    }
    out.truncate(kept);
    Ok(out)
}

/// The tenant an object of this name belongs to, if it is sealed.
pub fn tenant_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    let prefix = parts.next()?;
    PREFIXES.contains(&prefix).then_some(())?;
    let tenant = parts.next().filter(|t| !t.is_empty())?;
    parts.next()?;
    Some(tenant)
}

/// Where a service finds tenants' keys.
#[async_trait]
pub trait KeyRing: Send + Sync + fmt::Debug + 'static {
    /// The key new objects of `tenant` are sealed to.
    async fn recipient(&self, tenant: &str) -> Result<Recipient, String>;
    /// The private key with id `kid` of `tenant`.
    async fn opener(&self, tenant: &str, kid: [u8; 16]) -> Result<Arc<Opener>, String>;
}

/// The keys an edge knows: each tenant's public key, from the classes core
/// started on it. An edge opens nothing.
#[derive(Debug, Default)]
pub struct Recipients {
    known: Mutex<std::collections::HashMap<String, Recipient>>,
}

impl Recipients {
    pub fn set(&self, tenant: &str, key: Recipient) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.to_owned(), key);
    }
}

#[async_trait]
impl KeyRing for Recipients {
    async fn recipient(&self, tenant: &str) -> Result<Recipient, String> {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
            .ok_or_else(|| format!("no recording key for tenant {tenant}: core did not send one"))
    }
    async fn opener(&self, _: &str, _: [u8; 16]) -> Result<Arc<Opener>, String> {
        Err("this service writes recordings it cannot read".into())
    }
}

fn generic(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> object_store::Error {
    object_store::Error::Generic {
        store: "sealed",
        source: e.into(),
    }
}

/// An object store whose recordings are sealed to their tenant.
#[derive(Debug)]
pub struct SealedStore {
    inner: Arc<dyn ObjectStore>,
    keys: Arc<dyn KeyRing>,
}

impl SealedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, keys: Arc<dyn KeyRing>) -> SealedStore {
        SealedStore { inner, keys }
    }

    async fn seal_for(
        &self,
        location: &Path,
        payload: PutPayload,
    ) -> object_store::Result<PutPayload> {
        seal_payload(self.keys.as_ref(), location, payload).await
    }

    /// The opener and sizes of a sealed object; None when it is plain.
    async fn probe(
        &self,
        location: &Path,
        tenant: &str,
    ) -> object_store::Result<Option<(ChunkOpener, ObjectMeta, u64)>> {
        // the header and the object's size in one request
        let first = GetOptions {
            range: Some(GetRange::Bounded(0..HEADER as u64)),
            ..Default::default()
        };
        let (meta, head) = match self.inner.get_opts(location, first).await {
            Ok(r) => {
                let meta = r.meta.clone();
                (meta, r.bytes().await?)
            }
            Err(e @ object_store::Error::NotFound { .. }) => return Err(e),
            // an empty object has no first bytes to ask for
            Err(_) => (self.inner.head(location).await?, Bytes::new()),
        };
        if meta.size < sealed_len(0) {
            return Ok(None);
        }
        let header = match Header::parse(&head) {
            Ok(h) => h,
            Err(_) => return Ok(None),
        };
        let plain = plain_len(meta.size).ok_or_else(|| generic(SealError::Corrupt))?;
        let with = self
            .keys
            .opener(tenant, header.kid())
            .await
            .map_err(generic)?;
        let opener = ChunkOpener::new(&with, header, location.as_ref(), plain).map_err(generic)?;
        Ok(Some((opener, meta, plain)))
    }
}

impl fmt::Display for SealedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sealed({})", self.inner)
    }
}

/// The plain range a request asks for, within an object of `size` bytes.
fn resolve(range: Option<&GetRange>, size: u64) -> object_store::Result<Range<u64>> {
    let r = match range {
        None => 0..size,
        Some(GetRange::Bounded(r)) => r.start..r.end.min(size),
        Some(GetRange::Offset(o)) => *o..size,
        Some(GetRange::Suffix(n)) => size.saturating_sub(*n)..size,
    };
    if range.is_some() && (r.start >= size || r.start >= r.end) && !(size == 0 && r.start == 0) {
        return Err(generic(format!(
            "range {}..{} is outside an object of {size} bytes",
            r.start, r.end
        )));
    }
    Ok(r)
}

#[async_trait]
impl ObjectStore for SealedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let payload = self.seal_for(location, payload).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if tenant_of(location.as_ref()).is_none() {
            return self.inner.put_multipart_opts(location, opts).await;
        }
        // sealed whole on completion: recordings are written as one put
        Ok(Box::new(Buffered {
            parts: Arc::new(Mutex::new(Vec::new())),
            to: SealedTarget {
                store: self.inner.clone(),
                keys: self.keys.clone(),
                location: location.clone(),
                opts,
            },
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let Some(tenant) = tenant_of(location.as_ref()) else {
            return self.inner.get_opts(location, options).await;
        };
        let Some((opener, meta, plain)) = self.probe(location, tenant).await? else {
            return self.inner.get_opts(location, options).await;
        };
        let want = resolve(options.range.as_ref(), plain)?;
        let mut shown = meta.clone();
        shown.size = plain;
        if options.head || want.is_empty() {
            return Ok(GetResult {
                payload: GetResultPayload::Stream(
                    futures::stream::empty::<object_store::Result<Bytes>>().boxed(),
                ),
                meta: shown,
                range: want,
                attributes: Default::default(),
            });
        }
        let first = want.start / CHUNK as u64;
        let last = (want.end - 1) / CHUNK as u64;
        let from = HEADER as u64 + first * SEALED_CHUNK as u64;
        let to = (HEADER as u64 + (last + 1) * SEALED_CHUNK as u64).min(meta.size);
        let mut inner_opts = options;
        inner_opts.range = Some(GetRange::Bounded(from..to));
        inner_opts.head = false;
        let got = self.inner.get_opts(location, inner_opts).await?;
        let attributes = got.attributes.clone();
        let sealed = match got.payload {
            // a local file: one read (its stream reads in small blocks)
            GetResultPayload::File(..) => {
                let all = got.bytes().await?;
                futures::stream::once(async move { Ok(all) }).boxed()
            }
            GetResultPayload::Stream(s) => s,
        };
        let stream = open_stream(sealed, opener, first, want.clone());
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            meta: shown,
            range: want,
            attributes,
        })
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        let bytes = self.get(from).await?.bytes().await?;
        self.put(to, bytes.into()).await.map(|_| ())
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        if tenant_of(from.as_ref()).is_none() && tenant_of(to.as_ref()).is_none() {
            return self.inner.copy_if_not_exists(from, to).await;
        }
        let bytes = self.get(from).await?.bytes().await?;
        let payload = self.seal_for(to, bytes.into()).await?;
        self.inner
            .put_opts(to, payload, object_store::PutMode::Create.into())
            .await
            .map(|_| ())
    }
}

/// `payload` as it is stored at `location`: sealed to its tenant's key on a
/// sealed path (or an error without one), as it is elsewhere.
async fn seal_payload(
    keys: &dyn KeyRing,
    location: &Path,
    payload: PutPayload,
) -> object_store::Result<PutPayload> {
    let Some(tenant) = tenant_of(location.as_ref()) else {
        return Ok(payload);
    };
    let to = keys.recipient(tenant).await.map_err(generic)?;
    let parts: Vec<&Bytes> = payload.iter().collect();
    let sealed = match parts.as_slice() {
        [one] => seal(&to, location.as_ref(), one),
        _ => seal(&to, location.as_ref(), &concat(parts.into_iter())),
    }
    .map_err(generic)?;
    Ok(sealed.into())
}

fn concat<'a>(parts: impl Iterator<Item = &'a Bytes>) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Decrypts a stream of sealed chunks starting at chunk `first`, yielding
/// only the plain bytes of `want`.
fn open_stream(
    sealed: BoxStream<'static, object_store::Result<Bytes>>,
    opener: ChunkOpener,
    first: u64,
    want: Range<u64>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    struct St {
        sealed: BoxStream<'static, object_store::Result<Bytes>>,
        buf: bytes::BytesMut,
        index: u64,
        opener: ChunkOpener,
        want: Range<u64>,
        done: bool,
    }
    let st = St {
        sealed,
        buf: bytes::BytesMut::with_capacity(2 * SEALED_CHUNK),
        index: first,
        opener,
        want,
        done: false,
    };
    futures::stream::try_unfold(st, |mut st| async move {
        loop {
            if st.done {
                return Ok(None);
            }
            let is_last = st.index == st.opener.last;
            let need = if is_last { None } else { Some(SEALED_CHUNK) };
            let ready = match need {
                Some(n) => st.buf.len() >= n,
                None => false,
            };
            if !ready {
                match st.sealed.next().await {
                    Some(Ok(b)) => {
                        st.buf.extend_from_slice(&b);
                        continue;
                    }
                    Some(Err(e)) => return Err(e),
                    None => {
                        // the stream ended: what is left is the last chunk
                        // of the range asked for
                        if st.buf.is_empty() {
                            return Err(generic("a sealed object ended early"));
                        }
                    }
                }
            }
            let take = need.unwrap_or(st.buf.len()).min(st.buf.len());
            let mut chunk = st.buf.split_to(take);
            let n = st
                .opener
                .open_in_place(st.index, &mut chunk)
                .map_err(generic)?;
            chunk.truncate(n);
            let plain = chunk.freeze();
            let at = st.index * CHUNK as u64;
            st.index += 1;
            let lo = st.want.start.saturating_sub(at).min(plain.len() as u64) as usize;
            let hi = st.want.end.saturating_sub(at).min(plain.len() as u64) as usize;
            if at + plain.len() as u64 >= st.want.end || is_last {
                st.done = true;
            }
            if lo < hi {
                return Ok(Some((plain.slice(lo..hi), st)));
            }
        }
    })
    .boxed()
}

struct SealedTarget {
    store: Arc<dyn ObjectStore>,
    keys: Arc<dyn KeyRing>,
    location: Path,
    opts: PutMultipartOptions,
}

/// A multipart write to a sealed path: held until complete, then sealed and
/// written as one object.
struct Buffered {
    parts: Arc<Mutex<Vec<Bytes>>>,
    to: SealedTarget,
}

impl fmt::Debug for Buffered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buffered({})", self.to.location)
    }
}

#[async_trait]
impl MultipartUpload for Buffered {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let parts = self.parts.clone();
        Box::pin(async move {
            parts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(data.iter().cloned());
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let parts: PutPayload = self
            .parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        let t = &self.to;
        let sealed = seal_payload(t.keys.as_ref(), &t.location, parts).await?;
        let opts = PutOptions {
            tags: t.opts.tags.clone(),
            attributes: t.opts.attributes.clone(),
            ..Default::default()
        };
        t.store.put_opts(&t.location, sealed, opts).await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Ring(Arc<Opener>);

    #[async_trait]
    impl KeyRing for Ring {
        async fn recipient(&self, _: &str) -> Result<Recipient, String> {
            Ok(self.0.recipient())
        }
        async fn opener(&self, _: &str, kid: [u8; 16]) -> Result<Arc<Opener>, String> {
            if kid == self.0.recipient().kid() {
                Ok(self.0.clone())
            } else {
                Err("unknown".into())
            }
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn sizes_round_trip() {
        for plain in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5] {
            let s = sealed_len(plain as u64);
            assert_eq!(plain_len(s), Some(plain as u64), "{plain}");
        }
        assert_eq!(plain_len(HEADER as u64 + 3), None);
        assert_eq!(plain_len(5), None);
    }

    #[test]
    fn a_sealed_object_opens_with_its_key_only_and_not_under_another_name() {
        let k = Opener::generate().unwrap();
        let again = Opener::from_secret(&k.secret().unwrap()).unwrap();
        assert_eq!(again.recipient(), k.recipient());
        let hex_key = k.recipient().to_hex();
        assert_eq!(Recipient::from_hex(&hex_key).unwrap(), k.recipient());
        let plain = data(3 * CHUNK + 17);
        let path = "recordings/t1/s/seg00000.mp4";
        let sealed = seal(&k.recipient(), path, &plain).unwrap();
        assert_eq!(sealed.len() as u64, sealed_len(plain.len() as u64));
        assert!(!sealed.windows(64).any(|w| w == &plain[1000..1064]));
        assert_eq!(open(&k, path, &sealed).unwrap(), plain);
        // another tenant's key, another name, a flipped bit, a cut tail
        let other = Opener::generate().unwrap();
        assert!(matches!(
            open(&other, path, &sealed),
            Err(SealError::UnknownKey(_))
        ));
        assert!(open(&k, "recordings/t2/s/seg00000.mp4", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[HEADER + 5] ^= 1;
        assert!(open(&k, path, &flipped).is_err());
        let cut = &sealed[..HEADER + 2 * SEALED_CHUNK];
        assert!(open(&k, path, cut).is_err(), "a truncation must not open");
        // empty objects too
        let empty = seal(&k.recipient(), path, b"").unwrap();
        assert_eq!(open(&k, path, &empty).unwrap(), b"");
    }

    #[test]
    fn only_recordings_are_sealed() {
        assert_eq!(tenant_of("recordings/t1/s/seg.mp4"), Some("t1"));
        assert_eq!(tenant_of("recordings/t1"), None);
        assert_eq!(tenant_of("decks/t1/x.pdf"), None);
        assert_eq!(tenant_of("exports/t1/x.zip"), Some("t1"));
        assert_eq!(tenant_of("recordingsx/t1/x"), None);
    }

    #[tokio::test]
    async fn the_store_seals_writes_and_opens_whole_and_ranged_reads() {
        let raw: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let k = Arc::new(Opener::generate().unwrap());
        let store = SealedStore::new(raw.clone(), Arc::new(Ring(k.clone())));
        let plain = data(2 * CHUNK + 999);
        let path = Path::from("recordings/t1/s1/seg00001.mp4");
        store.put(&path, plain.clone().into()).await.unwrap();
        let stored = raw.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&stored[..8], MAGIC);
        assert_eq!(stored.len() as u64, sealed_len(plain.len() as u64));
        let whole = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(whole.as_ref(), plain.as_slice());
        assert_eq!(store.head(&path).await.unwrap().size, plain.len() as u64);
        for r in [
            0..1,
            5..CHUNK as u64 + 10,
            CHUNK as u64..2 * CHUNK as u64,
            2 * CHUNK as u64 - 3..plain.len() as u64,
            100..plain.len() as u64 + 50,
        ] {
            let got = store.get_range(&path, r.clone()).await.unwrap();
            let end = (r.end as usize).min(plain.len());
            assert_eq!(got.as_ref(), &plain[r.start as usize..end], "{r:?}");
        }
        let suffix = store
            .get_opts(
                &path,
                GetOptions {
                    range: Some(GetRange::Suffix(10)),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(suffix.as_ref(), &plain[plain.len() - 10..]);
        // multipart writes are sealed too
        let mp = Path::from("recordings/t1/s1/recording.mp4");
        let mut up = store.put_multipart(&mp).await.unwrap();
        up.put_part(plain[..1000].to_vec().into()).await.unwrap();
        up.put_part(plain[1000..].to_vec().into()).await.unwrap();
        up.complete().await.unwrap();
        assert_eq!(
            &raw.get(&mp).await.unwrap().bytes().await.unwrap()[..8],
            MAGIC
        );
        assert_eq!(
            store
                .get(&mp)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            plain.as_slice()
        );
        // plain objects from before, and paths outside recordings, pass
        let old = Path::from("recordings/t1/s0/seg00000.mp4");
        raw.put(&old, b"an old plain segment".to_vec().into())
            .await
            .unwrap();
        assert_eq!(
            store
                .get(&old)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            b"an old plain segment"
        );
        let deck = Path::from("decks/t1/d.pdf");
        store.put(&deck, b"%PDF".to_vec().into()).await.unwrap();
        assert_eq!(
            raw.get(&deck)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            b"%PDF"
        );
        // an edge writes but cannot read, and refuses a tenant it has no key for
        let edge_keys = Arc::new(Recipients::default());
        let edge = SealedStore::new(raw.clone(), edge_keys.clone());
        let p2 = Path::from("recordings/t2/s/seg00000.mp4");
        assert!(edge.put(&p2, b"x".to_vec().into()).await.is_err());
        assert!(raw.head(&p2).await.is_err(), "nothing written in plain");
        edge_keys.set("t2", k.recipient());
        edge.put(&p2, b"x".to_vec().into()).await.unwrap();
        assert!(edge.get(&p2).await.is_err());
        assert_eq!(
            store
                .get(&p2)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            b"x"
        );
    }
}
