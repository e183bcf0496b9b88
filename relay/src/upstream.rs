//! The link to `--upstream`: one MoQ session to the parent relay, dialled
//! when a local subscriber first asks for a track nobody here publishes, and
//! redialled after it drops. Every pulled track shares it.

use std::path::PathBuf;

use moq_transport::session::Subscriber;
use tokio::sync::Mutex;
use url::Url;

use crate::client::{Connection, DialError, Dialer};

/// Where the upstream token comes from: a fixed value, or a file re-read at
/// every dial so a token refreshed on disk is picked up without a restart.
#[derive(Clone, Debug)]
pub enum UpstreamToken {
    None,
    Value(String),
    File(PathBuf),
}

pub(crate) struct UpstreamLink {
    url: Url,
    token: UpstreamToken,
    dialer: Dialer,
    /// The live connection, if any. A mutex so concurrent pulls share one
    /// dial instead of racing to open several links.
    connection: Mutex<Option<Connection>>,
}

impl UpstreamLink {
    pub(crate) fn new(url: Url, token: UpstreamToken, dialer: Dialer) -> UpstreamLink {
        UpstreamLink {
            url,
            token,
            dialer,
            connection: Mutex::new(None),
        }
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// The upstream session's subscriber half, dialling if needed.
    pub(crate) async fn subscriber(&self) -> Result<Subscriber, DialError> {
        let mut guard = self.connection.lock().await;
        if let Some(connection) = guard.as_ref() {
            if !connection.is_closed() {
                return Ok(connection.subscriber.clone());
            }
            tracing::info!(url = %self.url, "upstream link lost; redialling");
        }
        let token = match &self.token {
            UpstreamToken::None => None,
            UpstreamToken::Value(t) => Some(t.clone()),
            UpstreamToken::File(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| DialError::Setup(format!("{}: {e}", path.display())))?
                    .trim()
                    .to_owned(),
            ),
        };
        let mut connection = self.dialer.connect(&self.url, token.as_deref()).await?;
        connection.probe().await?;
        tracing::info!(url = %self.url, "upstream link up");
        let subscriber = connection.subscriber.clone();
        *guard = Some(connection);
        Ok(subscriber)
    }
}
