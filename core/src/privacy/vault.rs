//! The vault: each person's data key, made on first use, kept wrapped by
//! the KEK in `subject_keys`, and deleted on erasure. Events are sealed on
//! their way into `session_state_events` and opened on their way out, so
//! every reader of the log sees plain text, or placeholders for an erased
//! person, and the rows at rest hold neither.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::kms::Kms;
use super::seal::{self, DataKey, Owner};
use crate::events::store::StoredEvent;

/// How long a core trusts its memory of a key. An erasure through another
/// core replica reaches this one within this time; through this one, at once.
const CACHE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 100_000;

#[derive(Clone)]
enum Known {
    Key(Arc<DataKey>),
    Erased,
}

pub(crate) struct Vault {
    kms: Arc<dyn Kms>,
    cache: Mutex<HashMap<(Uuid, Uuid), (Known, Instant)>>,
}

fn context(tenant: Uuid, user: Uuid) -> Vec<u8> {
    let mut c = b"classroom subject key/".to_vec();
    c.extend_from_slice(tenant.as_bytes());
    c.extend_from_slice(user.as_bytes());
    c
}

impl Vault {
    pub(crate) fn new(kms: Arc<dyn Kms>) -> Vault {
        Vault {
            kms,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, tenant: Uuid, user: Uuid) -> Option<Known> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&(tenant, user))
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(k, _)| k.clone())
    }

    fn remember(&self, tenant: Uuid, user: Uuid, known: Known) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert((tenant, user), (known, Instant::now()));
    }

    /// A person's key: None when erased, or (`create` false) never made.
    /// Keys are made in their own commit, never inside a caller's
    /// transaction: a key that sealed anything must outlive a rollback.
    async fn key(
        &self,
        db: &PgPool,
        tenant: Uuid,
        user: Uuid,
        create: bool,
    ) -> anyhow::Result<Option<Arc<DataKey>>> {
        match self.cached(tenant, user) {
            Some(Known::Key(k)) => return Ok(Some(k)),
            Some(Known::Erased) => return Ok(None),
            None => {}
        }
        if create {
            let fresh = DataKey::generate()?;
            let wrapped = self.kms.wrap(&fresh, &context(tenant, user))?;
            sqlx::query(
                "INSERT INTO subject_keys (tenant_id, user_id, kek_id, wrapped_key)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(user)
            .bind(self.kms.id())
            .bind(wrapped)
            .execute(db)
            .await?;
        }
        let row: Option<(String, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT kek_id, wrapped_key FROM subject_keys WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant)
        .bind(user)
        .fetch_optional(db)
        .await?;
        match row {
            None => Ok(None),
            Some((_, None)) => {
                self.remember(tenant, user, Known::Erased);
                Ok(None)
            }
            Some((kek, Some(wrapped))) => {
                anyhow::ensure!(
                    kek == self.kms.id(),
                    "a data key is wrapped by {kek}, and this core holds {}",
                    self.kms.id()
                );
                let bytes = self.kms.unwrap(&wrapped, &context(tenant, user))?;
                let key = Arc::new(DataKey::from_bytes(&bytes)?);
                self.remember(tenant, user, Known::Key(key.clone()));
                Ok(Some(key))
            }
        }
    }

    /// Seals the personal fields of events about to be written. A seat's
    /// account comes from a `participant.joined` in the same batch or the
    /// `participants` table (read through `tx`, which sees the batch's
    /// earlier writes).
    pub(crate) async fn seal(
        &self,
        db: &PgPool,
        tx: &mut PgConnection,
        evs: &mut [StoredEvent],
    ) -> anyhow::Result<()> {
        let mut seats: HashMap<Uuid, Option<Uuid>> = HashMap::new();
        for ev in evs.iter() {
            if let Owner::User(u) = seal::owner(&ev.event_type, &ev.payload)
                && let Some(Ok(seat)) = ev.payload["participant_id"].as_str().map(str::parse)
            {
                seats.insert(seat, Some(u));
            }
        }
        let unknown: Vec<Uuid> = evs
            .iter()
            .filter_map(|ev| match seal::owner(&ev.event_type, &ev.payload) {
                Owner::Seat(s) if !seats.contains_key(&s) => Some(s),
                _ => None,
            })
            .collect();
        if !unknown.is_empty() {
            let rows: Vec<(Uuid, Option<Uuid>)> =
                sqlx::query_as("SELECT id, user_id FROM participants WHERE id = ANY($1)")
                    .bind(&unknown)
                    .fetch_all(&mut *tx)
                    .await?;
            seats.extend(rows);
        }
        for ev in evs.iter_mut() {
            let user = match seal::owner(&ev.event_type, &ev.payload) {
                Owner::User(u) => Some(u),
                Owner::Seat(s) => seats.get(&s).copied().flatten(),
                Owner::Nobody => None,
            };
            let Some(user) = user else { continue };
            let key = self.key(db, ev.tenant_id, user, true).await?;
            seal::seal_payload(
                &mut ev.payload,
                &ev.event_type,
                ev.tenant_id,
                ev.event_id,
                user,
                key.as_deref(),
            );
        }
        Ok(())
    }

    /// Opens the sealed fields of events read from the log.
    pub(crate) async fn open(&self, db: &PgPool, evs: &mut [StoredEvent]) -> anyhow::Result<()> {
        for ev in evs.iter_mut() {
            self.open_payload(
                db,
                ev.tenant_id,
                ev.event_id,
                &ev.event_type,
                &mut ev.payload,
            )
            .await?;
        }
        Ok(())
    }

    /// Opens the sealed fields of one payload read from the log.
    pub(crate) async fn open_payload(
        &self,
        db: &PgPool,
        tenant: Uuid,
        event_id: Uuid,
        event_type: &str,
        payload: &mut Value,
    ) -> anyhow::Result<()> {
        let mut keys: HashMap<Uuid, Arc<DataKey>> = HashMap::new();
        for field in seal::personal_fields(event_type) {
            if let Some(user) = payload[*field].as_str().and_then(seal::sealed_by)
                && !keys.contains_key(&user)
                && let Some(k) = self.key(db, tenant, user, false).await?
            {
                keys.insert(user, k);
            }
        }
        seal::open_payload(payload, event_type, tenant, event_id, |u| {
            keys.get(&u).map(|k| k.as_ref())
        });
        Ok(())
    }

    /// Seals the words of a transcript's attributed segments under their
    /// speakers' keys. `seats` maps a seat to its account (a seat without
    /// one, a guest, stays plain).
    pub(crate) async fn seal_transcript(
        &self,
        db: &PgPool,
        tenant: Uuid,
        session: Uuid,
        transcript: &mut Value,
        seats: &HashMap<String, Uuid>,
    ) -> anyhow::Result<()> {
        let mut keys: HashMap<String, (Uuid, Option<Arc<DataKey>>)> = HashMap::new();
        let speakers: Vec<String> = transcript["segments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["speaker"].as_str().map(str::to_owned))
            .collect();
        for seat in speakers {
            if keys.contains_key(&seat) {
                continue;
            }
            if let Some(user) = seats.get(&seat) {
                let key = self.key(db, tenant, *user, true).await?;
                keys.insert(seat, (*user, key));
            }
        }
        seal::seal_transcript(transcript, tenant, session, |seat| {
            keys.get(seat).map(|(u, k)| (*u, k.as_deref()))
        });
        Ok(())
    }

    /// Opens a transcript read from the artifacts: an erased speaker's
    /// segments read as the placeholder.
    pub(crate) async fn open_transcript(
        &self,
        db: &PgPool,
        tenant: Uuid,
        session: Uuid,
        transcript: &mut Value,
    ) -> anyhow::Result<()> {
        let mut keys: HashMap<Uuid, Arc<DataKey>> = HashMap::new();
        let people: Vec<Uuid> = transcript["segments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["text"].as_str().and_then(seal::sealed_by))
            .collect();
        for user in people {
            if !keys.contains_key(&user)
                && let Some(k) = self.key(db, tenant, user, false).await?
            {
                keys.insert(user, k);
            }
        }
        seal::open_transcript(transcript, tenant, session, |u| {
            keys.get(&u).map(|k| k.as_ref())
        });
        Ok(())
    }

    /// Deletes a person's data key, for good: whatever was sealed under it
    /// reads as placeholders from now on, and anything of theirs that still
    /// arrives is written as placeholders.
    pub(crate) async fn erase(&self, db: &PgPool, tenant: Uuid, user: Uuid) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO subject_keys (tenant_id, user_id, kek_id, wrapped_key, erased_at)
             VALUES ($1, $2, $3, NULL, now())
             ON CONFLICT (tenant_id, user_id) DO UPDATE
               SET wrapped_key = NULL, erased_at = COALESCE(subject_keys.erased_at, now())",
        )
        .bind(tenant)
        .bind(user)
        .bind(self.kms.id())
        .execute(db)
        .await?;
        self.remember(tenant, user, Known::Erased);
        Ok(())
    }
}
