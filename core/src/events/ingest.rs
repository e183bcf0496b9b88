//! The durable consumer that writes the hub stream into Postgres.
//!
//! Messages arrive in stream order, which for one session is `seq` order
//! (one writer per session). Each batch is written in one transaction and
//! acknowledged only after it commits; a redelivery hits the unique keys and
//! changes nothing. A `seq` gap means the hub stream lost or reordered
//! something: the missing range is read back from the edge's own stream
//! (kept for days) before the session moves on. Events of a session whose
//! row is not committed yet (a start in flight) wait and are retried.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures::StreamExt;
use protocol::subjects::{
    HUB_STREAM, INGEST_CONSUMER, edge_domain, edge_event_subject, edge_stream_name,
    parse_event_subject,
};
use protocol::{EdgeId, EventBody, SessionId, Source, TenantId};
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::events::store::{self, StoredEvent};
use crate::privacy::Vault;

/// Batches are at most this many messages.
const BATCH: usize = 500;
/// A message of an unknown session is retried this often before it is dropped
/// (its start was rolled back: core never acknowledged that session).
const MAX_ORPHAN_DELIVERIES: i64 = 40;

pub(crate) struct Ingest {
    db: PgPool,
    nats: async_nats::Client,
    /// Seals personal fields before they are written.
    vault: Arc<Vault>,
    /// Last gap-free seq per session, as committed.
    last: HashMap<Uuid, (Uuid, i64)>,
    /// Each session's home edge (it never moves).
    homes: HashMap<Uuid, String>,
    /// Events refused in the batch being processed, recorded once it commits.
    refused: Vec<(EdgeId, TenantId, serde_json::Value)>,
}

enum Disposition {
    Ack,
    /// Try again later (after the delay).
    Retry(Duration),
    /// Unusable forever: log and drop.
    Term,
}

impl Ingest {
    pub(crate) fn new(db: PgPool, nats: async_nats::Client, vault: Arc<Vault>) -> Self {
        Ingest {
            db,
            nats,
            vault,
            last: HashMap::new(),
            homes: HashMap::new(),
            refused: Vec::new(),
        }
    }

    pub(crate) async fn run(
        mut self,
        js: jetstream::Context,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        let stream = js
            .get_stream(HUB_STREAM)
            .await
            .map_err(|e| anyhow::anyhow!("hub stream: {e}"))?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                INGEST_CONSUMER,
                consumer::pull::Config {
                    durable_name: Some(INGEST_CONSUMER.to_owned()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 50_000,
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("ingest consumer: {e}"))?;
        tracing::info!("event ingest running");
        while !stop.is_cancelled() {
            let batch = consumer
                .fetch()
                .max_messages(BATCH)
                .expires(Duration::from_millis(500))
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "ingest fetch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut msgs = Vec::new();
            while let Some(m) = batch.next().await {
                match m {
                    Ok(m) => msgs.push(m),
                    Err(e) => {
                        tracing::debug!(error = %e, "ingest batch ended early");
                        break;
                    }
                }
            }
            if msgs.is_empty() {
                continue;
            }
            self.refused.clear();
            if let Err(e) = self.process(&js, &msgs).await {
                // Nothing was committed: forget what we thought we knew and
                // let every message come again.
                tracing::error!(error = ?e, "ingest batch failed; will retry");
                self.last.clear();
                for m in &msgs {
                    let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                }
            }
        }
        Ok(())
    }

    async fn process(
        &mut self,
        js: &jetstream::Context,
        msgs: &[jetstream::Message],
    ) -> anyhow::Result<()> {
        let mut tx = self.db.begin().await?;
        let mut outcome = Vec::with_capacity(msgs.len());
        let mut touched: HashMap<Uuid, i64> = HashMap::new();
        // Sessions whose next event must wait: later events of the same
        // session in this batch wait too, so order is kept.
        let mut held: HashSet<Uuid> = HashSet::new();
        let mut pending_last = self.last.clone();
        let mut writes: Vec<StoredEvent> = Vec::new();
        for m in msgs {
            let disposition = self
                .one(
                    js,
                    &mut tx,
                    m,
                    &mut pending_last,
                    &mut touched,
                    &mut held,
                    &mut writes,
                )
                .await?;
            outcome.push(disposition);
        }
        // Lock the sessions' rows before writing their events, in id order:
        // `absorb` (a forwarded command's reply) takes the row first too, so
        // the two never wait on each other in opposite orders.
        let mut sessions: Vec<Uuid> = writes
            .iter()
            .map(|e| e.session_id)
            .chain(touched.keys().copied())
            .collect();
        sessions.sort_unstable();
        sessions.dedup();
        if !sessions.is_empty() {
            sqlx::query("SELECT id FROM sessions WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(&sessions)
                .execute(&mut *tx)
                .await?;
        }
        write_all(&self.db, &self.vault, &mut tx, &mut writes).await?;
        for (session, seq) in &touched {
            sqlx::query("UPDATE sessions SET last_seq = $2 WHERE id = $1 AND last_seq < $2")
                .bind(session)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.last = pending_last;
        for (edge, tenant, details) in self.refused.drain(..) {
            crate::trust::refuse(
                &self.db,
                &edge,
                crate::trust::Refusal::Event,
                Some(tenant),
                details,
            )
            .await;
        }
        for (m, d) in msgs.iter().zip(outcome) {
            let r = match d {
                Disposition::Ack => m.ack().await,
                Disposition::Retry(delay) => m.ack_with(AckKind::Nak(Some(delay))).await,
                Disposition::Term => m.ack_with(AckKind::Term).await,
            };
            if let Err(e) = r {
                // A lost ack means a redelivery, which the unique keys absorb.
                tracing::debug!(error = %e, "ack failed");
            }
        }
        Ok(())
    }

    async fn one(
        &mut self,
        js: &jetstream::Context,
        tx: &mut Transaction<'_, Postgres>,
        m: &jetstream::Message,
        last: &mut HashMap<Uuid, (Uuid, i64)>,
        touched: &mut HashMap<Uuid, i64>,
        held: &mut HashSet<Uuid>,
        writes: &mut Vec<StoredEvent>,
    ) -> anyhow::Result<Disposition> {
        let ev = match StoredEvent::from_json(&m.payload) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::error!(subject = %m.subject, error = %e, "unreadable event in hub stream; dropped");
                return Ok(Disposition::Term);
            }
        };
        let is_held = held.contains(&ev.session_id);
        let known = if is_held {
            None
        } else {
            self.known(tx, ev.session_id, last).await?
        };
        let deliveries = m.info().map(|i| i.delivered).unwrap_or(1);
        let verdict = judge(&ev, m.subject.as_str(), is_held, known.as_ref(), deliveries);
        let Some(k) = known else {
            // later events of the session in this batch wait behind it
            held.insert(ev.session_id);
            return Ok(verdict.disposition(&ev));
        };
        let tenant = k.tenant;
        match verdict {
            Verdict::Write => {}
            Verdict::Refuse(from) => {
                self.refused.push((
                    from,
                    TenantId::from_uuid(tenant),
                    serde_json::json!({
                        "session_id": ev.session_id,
                        "event_id": ev.event_id,
                        "subject": m.subject.as_str(),
                        "home_edge": k.home,
                    }),
                ));
                return Ok(Disposition::Term);
            }
            Verdict::Repair { from, to } => {
                let high = match self.repair(js, &ev, from - 1, writes).await {
                    Ok(repaired) => repaired,
                    Err(e) => {
                        tracing::warn!(session_id = %ev.session_id, from, to, error = %e, "seq gap could not be repaired yet");
                        held.insert(ev.session_id);
                        return Ok(Disposition::Retry(Duration::from_secs(1)));
                    }
                };
                if ev.seq != high + 1 {
                    held.insert(ev.session_id);
                    return Ok(Disposition::Retry(Duration::from_secs(1)));
                }
            }
            other => return Ok(other.disposition(&ev)),
        }
        last.insert(ev.session_id, (tenant, ev.seq));
        touched.insert(ev.session_id, ev.seq);
        writes.push(ev);
        Ok(Disposition::Ack)
    }

    /// What core knows of a session: its tenant, gap-free high-water mark
    /// (as this batch has it) and home edge. None: no such session (yet).
    async fn known(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        session: Uuid,
        last: &mut HashMap<Uuid, (Uuid, i64)>,
    ) -> anyhow::Result<Option<Known>> {
        if let (Some((tenant, high)), Some(home)) = (last.get(&session), self.homes.get(&session)) {
            return Ok(Some(Known {
                tenant: *tenant,
                high: *high,
                home: home.clone(),
            }));
        }
        let row: Option<(Uuid, i64, String)> =
            sqlx::query_as("SELECT tenant_id, last_seq, edge_id FROM sessions WHERE id = $1")
                .bind(session)
                .fetch_optional(&mut **tx)
                .await?;
        Ok(row.map(|(tenant, seq, home)| {
            self.homes.insert(session, home.clone());
            let (tenant, high) = *last.entry(session).or_insert((tenant, seq));
            Known { tenant, high, home }
        }))
    }

    /// Reads events `high+1 .. ev.seq-1` of the session back from the edge
    /// that wrote them and writes them. Returns the new high-water mark.
    async fn repair(
        &self,
        _js: &jetstream::Context,
        ev: &StoredEvent,
        high: i64,
        writes: &mut Vec<StoredEvent>,
    ) -> anyhow::Result<i64> {
        let source: Source = ev.source.parse()?;
        let Source::Edge(edge) = source else {
            anyhow::bail!("core's own events have no other copy to repair from");
        };
        tracing::warn!(session_id = %ev.session_id, from = high + 1, to = ev.seq - 1, edge_id = %edge, "repairing seq gap from the edge stream");
        let missing = read_edge_range(
            &self.nats,
            &edge,
            ev.tenant_id.into(),
            ev.session_id.into(),
            high + 1,
            ev.seq - 1,
        )
        .await?;
        let mut h = high;
        for m in missing {
            if m.seq == h + 1 {
                h = m.seq;
                writes.push(m);
            }
        }
        Ok(h)
    }
}

/// What ingest knows of an event's session.
#[derive(Debug, Clone)]
struct Known {
    tenant: Uuid,
    /// The gap-free high-water mark: every seq up to it is written.
    high: i64,
    home: String,
}

/// What one event needs. Decided by [`judge`] from the event and what is
/// known of its session, with no I/O; the shell carries it out.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// The next seq of its session: write it.
    Write,
    /// Written already (a redelivery): acknowledge, write nothing.
    Duplicate,
    /// Not yet: its session waits on an earlier event, or its row is not
    /// committed (a start in flight). Retry after this long.
    Wait(Duration),
    /// Seqs `from..=to` are missing: read them back from the home edge
    /// first.
    Repair { from: i64, to: i64 },
    /// Never usable (unreadable, another tenant's, a session core never
    /// started): dropped.
    Drop(&'static str),
    /// Sent through an edge that is not the session's home: refused and
    /// audited, never written.
    Refuse(EdgeId),
}

impl Verdict {
    fn disposition(&self, ev: &StoredEvent) -> Disposition {
        match self {
            Verdict::Write | Verdict::Duplicate => Disposition::Ack,
            Verdict::Wait(d) => Disposition::Retry(*d),
            Verdict::Repair { .. } => Disposition::Retry(Duration::from_secs(1)),
            Verdict::Drop(why) => {
                tracing::warn!(session_id = %ev.session_id, seq = ev.seq, why, "event dropped");
                Disposition::Term
            }
            Verdict::Refuse(_) => Disposition::Term,
        }
    }
}

/// Decides what an event needs (pure). `held`: an earlier event of its
/// session is waiting in this batch, so this one waits too (order is kept).
/// `deliveries`: how often the hub stream has handed it over.
fn judge(
    ev: &StoredEvent,
    subject: &str,
    held: bool,
    known: Option<&Known>,
    deliveries: i64,
) -> Verdict {
    if held {
        return Verdict::Wait(Duration::from_millis(500));
    }
    let Some(k) = known else {
        return if deliveries >= MAX_ORPHAN_DELIVERIES {
            Verdict::Drop("a session core never started")
        } else {
            Verdict::Wait(Duration::from_millis(250))
        };
    };
    if k.tenant != ev.tenant_id {
        return Verdict::Drop("claims another tenant than its session");
    }
    // Only the session's home edge writes its events, into its own
    // stream; the hub sources each edge stream filtered to that edge's
    // subjects, so the subject names the stream it came from. Core's
    // own subject is only publishable with core's identity.
    if let Some(from) = wrong_origin(subject, &ev.source, &k.home) {
        return Verdict::Refuse(from);
    }
    if ev.seq <= k.high {
        Verdict::Duplicate
    } else if ev.seq == k.high + 1 {
        Verdict::Write
    } else {
        Verdict::Repair {
            from: k.high + 1,
            to: ev.seq - 1,
        }
    }
}

/// The edge that sent an event it may not send (None: the event may come
/// from where it came). An edge's subject must be the session's home edge
/// and the envelope must name the same source.
fn wrong_origin(subject: &str, source: &str, home: &str) -> Option<EdgeId> {
    let (from, _, _) = parse_event_subject(subject)?;
    if from == "core" {
        return None;
    }
    let ok = from == home && source.strip_prefix("edge:") == Some(from);
    if ok { None } else { EdgeId::new(from).ok() }
}

/// Seals the events' personal fields, inserts them in one statement, then
/// applies the projections of those that were new, in order.
async fn write_all(
    db: &PgPool,
    vault: &Vault,
    tx: &mut Transaction<'_, Postgres>,
    evs: &mut [StoredEvent],
) -> anyhow::Result<()> {
    if evs.is_empty() {
        return Ok(());
    }
    vault.seal(db, tx, evs).await?;
    let fresh = store::insert_many(tx, evs).await?;
    for ev in evs.iter().filter(|e| fresh.contains(&e.event_id)) {
        project(tx, ev).await?;
    }
    Ok(())
}

/// Seals one event, inserts it and applies its projections.
async fn write_one(
    db: &PgPool,
    vault: &Vault,
    tx: &mut Transaction<'_, Postgres>,
    mut ev: StoredEvent,
) -> anyhow::Result<()> {
    vault.seal(db, tx, std::slice::from_mut(&mut ev)).await?;
    if store::insert(tx, &ev).await? {
        project(tx, &ev).await?;
    }
    Ok(())
}

/// Keeps the query tables (participants, session status) in step with the log.
async fn project(tx: &mut Transaction<'_, Postgres>, ev: &StoredEvent) -> anyhow::Result<()> {
    // Only these types touch a projection; skip parsing the rest.
    if !matches!(
        ev.event_type.as_str(),
        "participant.joined" | "participant.left" | "session.ended"
    ) {
        return Ok(());
    }
    let Some(typed) = ev.typed() else {
        return Ok(());
    };
    match &typed.body {
        EventBody::ParticipantJoined {
            participant_id,
            user_id,
            role,
            edge_id,
            ..
        } => {
            sqlx::query(
                "INSERT INTO participants (id, tenant_id, session_id, user_id, role, edge_id, joined_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET left_at = NULL, edge_id = EXCLUDED.edge_id",
            )
            .bind(participant_id.as_uuid())
            .bind(ev.tenant_id)
            .bind(ev.session_id)
            .bind(user_id.map(|u| u.as_uuid()))
            .bind(role.as_str())
            .bind(edge_id.as_str())
            .bind(ev.occurred_at)
            .execute(&mut **tx)
            .await?;
        }
        EventBody::ParticipantLeft { participant_id, .. } => {
            sqlx::query("UPDATE participants SET left_at = $2 WHERE id = $1")
                .bind(participant_id.as_uuid())
                .bind(ev.occurred_at)
                .execute(&mut **tx)
                .await?;
        }
        EventBody::SessionEnded { .. } => {
            sqlx::query(
                "UPDATE sessions SET status = 'ended', ended_at = $2 WHERE id = $1 AND status = 'live'",
            )
            .bind(ev.session_id)
            .bind(ev.occurred_at)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE participants SET left_at = $2 WHERE session_id = $1 AND left_at IS NULL",
            )
            .bind(ev.session_id)
            .bind(ev.occurred_at)
            .execute(&mut **tx)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Reads a seq range of one session straight from an edge's stream, through
/// that edge's JetStream domain.
pub(crate) async fn read_edge_range(
    nats: &async_nats::Client,
    edge: &EdgeId,
    tenant: TenantId,
    session: SessionId,
    from: i64,
    to: i64,
) -> anyhow::Result<Vec<StoredEvent>> {
    let js = jetstream::with_domain(nats.clone(), edge_domain(edge));
    let stream = js
        .get_stream(edge_stream_name(edge))
        .await
        .map_err(|e| anyhow::anyhow!("edge stream: {e}"))?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: edge_event_subject(edge, tenant, session),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("ordered consumer on edge stream: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("reading edge stream: {e}"))?;
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
        let Ok(Some(Ok(m))) = next else { break };
        let pending = m.info().map(|i| i.pending).unwrap_or(0);
        if let Ok(ev) = StoredEvent::from_json(&m.payload) {
            let seq = ev.seq;
            if seq >= from && seq <= to {
                out.push(ev);
            }
            if seq >= to {
                break;
            }
        }
        if pending == 0 {
            break;
        }
    }
    out.sort_by_key(|e| e.seq);
    Ok(out)
}

/// Writes events core just received from an edge (a forwarded command's
/// reply) if they continue the session's gap-free log; anything else is left
/// to the ingest consumer. Gives callers read-your-writes.
pub(crate) async fn absorb(
    db: &PgPool,
    vault: &Vault,
    events: &[protocol::Envelope],
) -> anyhow::Result<()> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    let mut tx = db.begin().await?;
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT last_seq FROM sessions WHERE id = $1 FOR UPDATE")
            .bind(first.session_id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
    let Some((mut last,)) = row else {
        return Ok(());
    };
    let start = last;
    for ev in events {
        let seq = ev.seq.get() as i64;
        if seq == last + 1 {
            write_one(db, vault, &mut tx, StoredEvent::from_envelope(ev)?).await?;
            last = seq;
        }
    }
    if last > start {
        sqlx::query("UPDATE sessions SET last_seq = $2 WHERE id = $1 AND last_seq < $2")
            .bind(first.session_id.as_uuid())
            .bind(last)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Uuid = Uuid::from_u128(1);
    const S: Uuid = Uuid::from_u128(2);

    fn ev(seq: i64, source: &str) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::from_u128(100 + seq as u128),
            tenant_id: T,
            session_id: S,
            seq,
            event_type: "chat.message".into(),
            v: 1,
            occurred_at: chrono::Utc::now(),
            actor: serde_json::json!({"kind": "system"}),
            source: source.into(),
            payload: serde_json::json!({}),
        }
    }

    fn known(high: i64) -> Known {
        Known {
            tenant: T,
            high,
            home: "edge-a".into(),
        }
    }

    fn subject(edge: &str) -> String {
        format!("cls.ev.{edge}.{T}.{S}")
    }

    #[test]
    fn the_next_seq_is_written_and_a_redelivery_is_only_acknowledged() {
        let k = known(4);
        let a = subject("edge-a");
        assert_eq!(
            judge(&ev(5, "edge:edge-a"), &a, false, Some(&k), 1),
            Verdict::Write
        );
        assert_eq!(
            judge(&ev(4, "edge:edge-a"), &a, false, Some(&k), 2),
            Verdict::Duplicate
        );
        assert_eq!(
            judge(&ev(1, "edge:edge-a"), &a, false, Some(&k), 9),
            Verdict::Duplicate
        );
    }

    #[test]
    fn a_gap_is_repaired_before_the_session_moves_on() {
        let a = subject("edge-a");
        assert_eq!(
            judge(&ev(9, "edge:edge-a"), &a, false, Some(&known(4)), 1),
            Verdict::Repair { from: 5, to: 8 }
        );
        // a long outage: the whole range comes back from the edge
        assert_eq!(
            judge(&ev(20_001, "edge:edge-a"), &a, false, Some(&known(0)), 1),
            Verdict::Repair {
                from: 1,
                to: 20_000
            }
        );
    }

    #[test]
    fn a_held_session_keeps_its_order_and_an_unknown_one_waits_then_is_dropped() {
        let a = subject("edge-a");
        assert!(matches!(
            judge(&ev(5, "edge:edge-a"), &a, true, Some(&known(4)), 1),
            Verdict::Wait(_)
        ));
        assert!(matches!(
            judge(&ev(1, "edge:edge-a"), &a, false, None, 1),
            Verdict::Wait(_)
        ));
        assert!(matches!(
            judge(
                &ev(1, "edge:edge-a"),
                &a,
                false,
                None,
                MAX_ORPHAN_DELIVERIES
            ),
            Verdict::Drop(_)
        ));
    }

    #[test]
    fn only_the_home_edge_and_core_may_write_a_session() {
        let k = known(4);
        let b = subject("edge-b");
        let e = EdgeId::new("edge-b".to_owned()).unwrap();
        assert_eq!(
            judge(&ev(5, "edge:edge-b"), &b, false, Some(&k), 1),
            Verdict::Refuse(e.clone())
        );
        // the subject is edge-a's but the envelope names another source
        let a = subject("edge-a");
        assert_eq!(
            judge(&ev(5, "edge:edge-b"), &a, false, Some(&k), 1),
            Verdict::Refuse(EdgeId::new("edge-a".to_owned()).unwrap())
        );
        // core's own events (after a class ended) are core's to write
        assert_eq!(
            judge(&ev(5, "core"), &subject("core"), false, Some(&k), 1),
            Verdict::Write
        );
        // another tenant's claim is dropped before anything else
        let mut other = ev(5, "edge:edge-a");
        other.tenant_id = Uuid::from_u128(9);
        assert!(matches!(
            judge(&other, &a, false, Some(&k), 1),
            Verdict::Drop(_)
        ));
    }
}
