//! The edge's event log: its own JetStream stream `EV_<edge>` on its leaf
//! node (file storage; the server syncs every write), with `Nats-Msg-Id` =
//! `event_id`. An append returns only after the PubAck, i.e. once the event
//! is durable here; core's hub stream sources it from here.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use protocol::subjects::{edge_domain, edge_event_subject, edge_stream_name, edge_stream_subjects};
use protocol::{EdgeId, Envelope, SessionId};

/// The edge keeps its log this long (by limits, not interest), so core can
/// re-read any range after a long outage.
const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long one append may take, retries included.
const APPEND_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the event log did not take the event: {0}")]
    Unavailable(String),
}

#[derive(Clone)]
pub struct EventLog {
    js: jetstream::Context,
    edge: EdgeId,
    stats: std::sync::Arc<AppendStats>,
}

/// Counters for `/healthz`: appends made and events they carried (their
/// ratio is the mean group-commit size).
#[derive(Default, Debug)]
pub struct AppendStats {
    pub appends: std::sync::atomic::AtomicU64,
    pub events: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
}

impl EventLog {
    pub async fn open(nats: async_nats::Client, edge: EdgeId) -> anyhow::Result<EventLog> {
        let js = jetstream::with_domain(nats, edge_domain(&edge));
        let cfg = stream::Config {
            name: edge_stream_name(&edge),
            subjects: vec![edge_stream_subjects(&edge)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            max_age: RETENTION,
            duplicate_window: Duration::from_secs(120),
            allow_atomic_publish: true,
            ..Default::default()
        };
        let mut stream = js
            .get_or_create_stream(cfg.clone())
            .await
            .map_err(|e| anyhow::anyhow!("creating the edge stream: {e}"))?;
        let info = stream
            .info()
            .await
            .map_err(|e| anyhow::anyhow!("edge stream info: {e}"))?;
        if !info.config.allow_atomic_publish && !info.config.sealed {
            let mut c = info.config.clone();
            c.allow_atomic_publish = true;
            js.update_stream(c)
                .await
                .map_err(|e| anyhow::anyhow!("enabling atomic batches: {e}"))?;
        }
        Ok(EventLog {
            js,
            edge,
            stats: Default::default(),
        })
    }

    /// Appends one event and waits until it is durable. Retries a lost ack
    /// with the same `Nats-Msg-Id`, which the stream deduplicates.
    pub async fn append(&self, ev: &Envelope) -> Result<u64, AppendError> {
        let subject = edge_event_subject(&self.edge, ev.tenant_id, ev.session_id);
        let payload =
            serde_json::to_vec(ev).map_err(|e| AppendError::Unavailable(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", ev.event_id.to_string().as_str());
        let deadline = tokio::time::Instant::now() + APPEND_DEADLINE;
        let mut last_err = String::new();
        while tokio::time::Instant::now() < deadline {
            let attempt = async {
                let ack = self
                    .js
                    .publish_with_headers(subject.clone(), headers.clone(), payload.clone().into())
                    .await?;
                ack.await
            };
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(ack)) => return Ok(ack.sequence),
                Ok(Err(e)) => {
                    use async_nats::jetstream::context::PublishErrorKind as K;
                    match e.kind() {
                        // transient: the server or its JetStream is not there
                        // right now; the same Nats-Msg-Id makes a retry safe
                        K::TimedOut | K::BrokenPipe | K::StreamNotFound | K::MaxAckPending => {
                            last_err = e.to_string()
                        }
                        // the stream refused it (sealed, full, too big): final
                        K::Other
                        | K::WrongLastMessageId
                        | K::WrongLastSequence
                        | K::MaxPayloadExceeded => {
                            let detail = std::error::Error::source(&e)
                                .map(|s| s.to_string())
                                .unwrap_or_default();
                            return Err(AppendError::Unavailable(format!("{e}: {detail}")));
                        }
                    }
                }
                Err(_) => last_err = "no ack within 2s".to_owned(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(AppendError::Unavailable(last_err))
    }

    /// Appends events as one atomic batch: all of them become durable, or
    /// none does. One event goes through `append` (with its safe retries).
    /// A batch is not retried here: a lost commit ack is ambiguous, and the
    /// session writer settles it by reading the log.
    pub async fn append_batch(&self, evs: &[Envelope]) -> Result<(), AppendError> {
        use std::sync::atomic::Ordering::Relaxed;
        let r = self.append_batch_inner(evs).await;
        match &r {
            Ok(()) => {
                self.stats.appends.fetch_add(1, Relaxed);
                self.stats.events.fetch_add(evs.len() as u64, Relaxed);
            }
            Err(_) => {
                self.stats.failures.fetch_add(1, Relaxed);
            }
        }
        r
    }

    pub fn stats(&self) -> &AppendStats {
        &self.stats
    }

    async fn append_batch_inner(&self, evs: &[Envelope]) -> Result<(), AppendError> {
        match evs {
            [] => Ok(()),
            [one] => self.append(one).await.map(|_| ()),
            many => {
                let client = self.js.client();
                let batch_id = uuid::Uuid::now_v7().simple().to_string();
                let last = many.len();
                for (i, ev) in many.iter().enumerate() {
                    let subject = edge_event_subject(&self.edge, ev.tenant_id, ev.session_id);
                    let payload = serde_json::to_vec(ev)
                        .map_err(|e| AppendError::Unavailable(e.to_string()))?;
                    let mut headers = HeaderMap::new();
                    headers.insert("Nats-Msg-Id", ev.event_id.to_string().as_str());
                    headers.insert("Nats-Batch-Id", batch_id.as_str());
                    headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
                    if i + 1 < last {
                        client
                            .publish_with_headers(subject, headers, payload.into())
                            .await
                            .map_err(|e| AppendError::Unavailable(e.to_string()))?;
                        continue;
                    }
                    headers.insert("Nats-Batch-Commit", "1");
                    let reply = tokio::time::timeout(
                        Duration::from_secs(2),
                        client.request_with_headers(subject, headers, payload.into()),
                    )
                    .await
                    .map_err(|_| AppendError::Unavailable("no commit ack within 2s".into()))?
                    .map_err(|e| AppendError::Unavailable(e.to_string()))?;
                    let ack: serde_json::Value =
                        serde_json::from_slice(&reply.payload).map_err(|e| {
                            AppendError::Unavailable(format!("unreadable commit ack: {e}"))
                        })?;
                    if let Some(err) = ack.get("error") {
                        return Err(AppendError::Unavailable(format!("batch refused: {err}")));
                    }
                    if ack.get("count").and_then(|c| c.as_u64()) != Some(last as u64) {
                        return Err(AppendError::Unavailable(format!(
                            "batch ack does not cover the batch: {ack}"
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether the stream answers right now.
    pub async fn healthy(&self) -> bool {
        let name = edge_stream_name(&self.edge);
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.js.get_stream(name)).await,
            Ok(Ok(_))
        )
    }

    /// Every session's log as stored, for rebuilding state after a restart.
    pub async fn read_all(&self) -> anyhow::Result<BTreeMap<SessionId, Vec<Envelope>>> {
        let mut out: BTreeMap<SessionId, Vec<Envelope>> = BTreeMap::new();
        let mut s = self
            .js
            .get_stream(edge_stream_name(&self.edge))
            .await
            .map_err(|e| anyhow::anyhow!("edge stream: {e}"))?;
        let total = s
            .info()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .state
            .messages;
        if total == 0 {
            return Ok(out);
        }
        let consumer = s
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("recovery consumer: {e}"))?;
        let mut msgs = consumer
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), msgs.next()).await;
            let m = match next {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => anyhow::bail!("reading the edge stream: {e}"),
                Ok(None) | Err(_) => break,
            };
            let pending = m.info().map(|i| i.pending).unwrap_or(0);
            match serde_json::from_slice::<Envelope>(&m.payload) {
                Ok(ev) => out.entry(ev.session_id).or_default().push(ev),
                Err(e) => {
                    tracing::error!(subject = %m.subject, error = %e, "unreadable event in own log")
                }
            }
            if pending == 0 {
                break;
            }
        }
        Ok(out)
    }
}

impl EventLog {
    /// One session's events after `after`, read from the stream (for live
    /// feed resumes that reach further back than memory).
    pub async fn read_session(
        &self,
        tenant: protocol::TenantId,
        session: SessionId,
        after: protocol::Seq,
    ) -> anyhow::Result<Vec<Envelope>> {
        let s = self
            .js
            .get_stream(edge_stream_name(&self.edge))
            .await
            .map_err(|e| anyhow::anyhow!("edge stream: {e}"))?;
        let consumer = s
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: edge_event_subject(&self.edge, tenant, session),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("session consumer: {e}"))?;
        let mut msgs = consumer
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut out = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(3), msgs.next()).await;
            let m = match next {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => anyhow::bail!("reading the edge stream: {e}"),
                Ok(None) | Err(_) => break,
            };
            let pending = m.info().map(|i| i.pending).unwrap_or(0);
            if let Ok(ev) = serde_json::from_slice::<Envelope>(&m.payload)
                && ev.seq > after
            {
                out.push(ev);
            }
            if pending == 0 {
                break;
            }
        }
        Ok(out)
    }
}
