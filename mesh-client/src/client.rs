//! [`MeshClient`]: one connection to the relay, publishing and subscribing
//! any number of tracks over it.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use moq_transport::coding::TrackNamespace;
use moq_transport::serve::{self, TracksWriter};
use moq_transport::session::Publisher;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::connection::Connection;
use crate::publisher::{GroupPolicy, TrackPublisher};
use crate::subscriber::{TrackSubscriber, track_error};
use crate::{MeshError, split_track_name};

/// A namespace (one participant) we publish: its tracks and the task that
/// answers the relay's SUBSCRIBEs for them.
struct Published {
    tracks: TracksWriter,
    serving: JoinHandle<()>,
}

/// A connection to the relay. Cheap to share behind an `Arc`; when it breaks,
/// every call returns [`MeshError::Disconnected`] (or `Unauthorized`) and the
/// caller connects a new one.
pub struct MeshClient {
    connection: Connection,
    published: Mutex<HashMap<String, Published>>,
}

impl MeshClient {
    /// Connects to `url` (`moqt://host:port`), trusting the CA certificates in
    /// `ca_pem`, presenting `token` (a relay token from core). Returns only
    /// once the relay has accepted the token: a refused one is
    /// [`MeshError::Unauthorized`].
    pub async fn connect(url: &str, ca_pem: &[u8], token: &str) -> Result<MeshClient, MeshError> {
        Ok(MeshClient {
            connection: Connection::dial(url, ca_pem, token).await?,
            published: Mutex::new(HashMap::new()),
        })
    }

    /// Starts publishing `name` (`<tenant>/<session>/<participant>/<kind>`).
    /// The participant's namespace is announced to the relay on its first
    /// track. Publishing the same name again replaces the old publisher.
    pub async fn publish_track(&self, name: &str) -> Result<TrackPublisher, MeshError> {
        self.check_open()?;
        let (namespace, kind) = split_track_name(name)?;
        let mut published = self.published.lock().await;
        if published
            .get(namespace)
            .is_none_or(|p| p.serving.is_finished())
        {
            let entry = self.publish_namespace(namespace).await?;
            published.insert(namespace.to_owned(), entry);
        }
        let Some(entry) = published.get_mut(namespace) else {
            return Err(MeshError::Disconnected("namespace vanished".to_owned()));
        };
        let writer = entry
            .tracks
            .create(kind)
            .ok_or_else(|| MeshError::Disconnected("namespace closed".to_owned()))?
            .subgroups()
            .map_err(|e| MeshError::Disconnected(e.to_string()))?;
        let (policy, priority) = GroupPolicy::for_kind(kind);
        Ok(TrackPublisher::new(
            name.to_owned(),
            writer,
            policy,
            priority,
            first_group_id(),
            self.connection.reason.clone(),
        ))
    }

    async fn publish_namespace(&self, namespace: &str) -> Result<Published, MeshError> {
        let ns = TrackNamespace::from_utf8_path(namespace);
        let (tracks, request, reader) = serve::Tracks::new(ns.clone()).produce();
        let mut publisher = self.connection.publisher.clone();
        let announce = publisher
            .publish_namespace_start(ns)
            .await
            .map_err(|e| self.session_error(e.to_string()))?;
        announce
            .ok()
            .await
            .map_err(|e| match self.connection.close_reason() {
                Some(reason) => reason.to_error(),
                None => MeshError::Unavailable(format!("relay refused namespace {namespace}: {e}")),
            })?;
        let namespace = namespace.to_owned();
        let serving = tokio::spawn(async move {
            // While `request` lives, SUBSCRIBEs for tracks we have not (yet)
            // created are queued instead of answered NOT FOUND; nobody
            // fulfils them, so keep the NOT FOUND behaviour by dropping it.
            drop(request);
            loop {
                match announce.subscribed().await {
                    Ok(Some(subscribed)) => {
                        let reader = reader.clone();
                        tokio::spawn(async move {
                            if let Err(error) = Publisher::serve_subscribe(subscribed, reader).await
                            {
                                tracing::debug!(%error, "serving a relay subscription ended");
                            }
                        });
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::info!(%namespace, %error, "namespace publication ended");
                        break;
                    }
                }
            }
        });
        Ok(Published { tracks, serving })
    }

    /// Subscribes to `name`. Fails fast with [`MeshError::NotFound`] when
    /// nobody publishes it (subscribe again later).
    pub async fn subscribe(&self, name: &str) -> Result<TrackSubscriber, MeshError> {
        self.check_open()?;
        let (namespace, kind) = split_track_name(name)?;
        let (writer, reader) =
            serve::Track::new(TrackNamespace::from_utf8_path(namespace), kind).produce();
        let mut subscriber = self.connection.subscriber.clone();
        // Not wrapped in a timeout on purpose: dropping a SUBSCRIBE while its
        // stream is being opened closes the whole session.
        let subscription = subscriber.subscribe_open(writer).await.map_err(|e| {
            match self.connection.close_reason() {
                Some(reason) => reason.to_error(),
                None => track_error(&e),
            }
        })?;
        Ok(TrackSubscriber::new(
            name.to_owned(),
            subscription,
            reader,
            self.connection.reason.clone(),
        ))
    }

    pub fn is_closed(&self) -> bool {
        self.connection.close_reason().is_some()
    }

    /// Waits until the connection ends; the error says why.
    pub async fn closed(&self) -> MeshError {
        self.connection.closed().await.to_error()
    }

    /// Closes the connection (the relay ends our tracks and subscriptions).
    pub fn close(&self) {
        self.connection.quic.close(0u32.into(), b"bye");
    }

    fn check_open(&self) -> Result<(), MeshError> {
        match self.connection.close_reason() {
            Some(reason) => Err(reason.to_error()),
            None => Ok(()),
        }
    }

    fn session_error(&self, error: String) -> MeshError {
        match self.connection.close_reason() {
            Some(reason) => reason.to_error(),
            None => MeshError::Unavailable(error),
        }
    }
}

/// Group ids start from the wall clock in milliseconds, so a restarted
/// publisher's groups sort after its previous ones (a subscriber that kept
/// state would otherwise see ids go backwards).
fn first_group_id() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
