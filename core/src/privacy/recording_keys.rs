//! Each tenant's recording key pair, for [`hosting::sealed`]: the public
//! half is what edges seal recordings to (sent with every class start), the
//! private half opens them and lives only here, wrapped by the KEK in
//! `tenant_recording_keys`. A tenant's first key is made when first needed.
//! Keys are never deleted: an object names the key it was sealed to.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hosting::sealed::{KeyRing, Opener, Recipient};
use sqlx::PgPool;
use uuid::Uuid;

use super::kms::Kms;

pub(crate) struct RecordingKeys {
    db: PgPool,
    kms: Arc<dyn Kms>,
    current: Mutex<HashMap<Uuid, Recipient>>,
    openers: Mutex<HashMap<(Uuid, String), Arc<Opener>>>,
}

impl fmt::Debug for RecordingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordingKeys({})", self.kms.id())
    }
}

/// Binds a wrapped secret to its tenant and key id.
fn context(tenant: Uuid, kid: &str) -> Vec<u8> {
    let mut c = b"classroom recording key/".to_vec();
    c.extend_from_slice(tenant.as_bytes());
    c.extend_from_slice(kid.as_bytes());
    c
}

fn tenant_id(text: &str) -> Result<Uuid, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a tenant id"))
}

impl RecordingKeys {
    pub(crate) fn new(db: PgPool, kms: Arc<dyn Kms>) -> RecordingKeys {
        RecordingKeys {
            db,
            kms,
            current: Mutex::new(HashMap::new()),
            openers: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's current public key, made if it has none yet.
    pub(crate) async fn current(&self, tenant: Uuid) -> anyhow::Result<Recipient> {
        if let Some(r) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&tenant)
        {
            return Ok(r.clone());
        }
        let newest = || {
            sqlx::query_as::<_, (String,)>(
                "SELECT public_key FROM tenant_recording_keys WHERE tenant_id = $1
                  ORDER BY created_at DESC, kid LIMIT 1",
            )
            .bind(tenant)
            .fetch_optional(&self.db)
        };
        let public = match newest().await? {
            Some((p,)) => p,
            None => {
                let fresh = Opener::generate()?;
                let r = fresh.recipient();
                let kid = r.kid_hex();
                let wrapped = self.kms.wrap(&fresh.secret()?, &context(tenant, &kid))?;
                // two cores making one at once: the first wins, both use it
                sqlx::query(
                    "INSERT INTO tenant_recording_keys (tenant_id, kid, public_key, kek_id, wrapped_secret)
                     SELECT $1, $2, $3, $4, $5
                      WHERE NOT EXISTS (SELECT 1 FROM tenant_recording_keys WHERE tenant_id = $1)",
                )
                .bind(tenant)
                .bind(&kid)
                .bind(r.to_hex())
                .bind(self.kms.id())
                .bind(wrapped)
                .execute(&self.db)
                .await?;
                tracing::info!(tenant_id = %tenant, kid, "made the tenant's recording key");
                newest()
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("the tenant's recording key vanished"))?
                    .0
            }
        };
        let r = Recipient::from_hex(&public)?;
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant, r.clone());
        Ok(r)
    }

    async fn load_opener(&self, tenant: Uuid, kid: &str) -> anyhow::Result<Arc<Opener>> {
        let key = (tenant, kid.to_owned());
        if let Some(o) = self
            .openers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(o.clone());
        }
        let row: Option<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT kek_id, wrapped_secret FROM tenant_recording_keys WHERE tenant_id = $1 AND kid = $2",
        )
        .bind(tenant)
        .bind(kid)
        .fetch_optional(&self.db)
        .await?;
        let (kek, wrapped) =
            row.ok_or_else(|| anyhow::anyhow!("tenant {tenant} has no recording key {kid}"))?;
        anyhow::ensure!(
            kek == self.kms.id(),
            "a recording key is wrapped by {kek}, and this core holds {}",
            self.kms.id()
        );
        let secret = self.kms.unwrap(&wrapped, &context(tenant, kid))?;
        let opener = Arc::new(Opener::from_secret(&secret)?);
        anyhow::ensure!(
            opener.recipient().kid_hex() == kid,
            "recording key {kid} does not match its row"
        );
        self.openers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, opener.clone());
        Ok(opener)
    }
}

#[async_trait]
impl KeyRing for RecordingKeys {
    async fn recipient(&self, tenant: &str) -> Result<Recipient, String> {
        self.current(tenant_id(tenant)?)
            .await
            .map_err(|e| e.to_string())
    }

    async fn opener(&self, tenant: &str, kid: [u8; 16]) -> Result<Arc<Opener>, String> {
        let kid: String = kid.iter().map(|b| format!("{b:02x}")).collect();
        self.load_opener(tenant_id(tenant)?, &kid)
            .await
            .map_err(|e| e.to_string())
    }
}
