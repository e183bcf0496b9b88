//! Core's request/reply link to edges over NATS. An edge that does not answer
//! in time is down as far as this request is concerned: the caller turns
//! that into a 503 and changes nothing.

use std::time::Duration;

use protocol::EdgeId;
use protocol::control::{EdgeReply, EdgeRequest};
use protocol::subjects::edge_control_subject;

#[derive(Debug, thiserror::Error)]
pub enum EdgeLinkError {
    #[error("edge {0} is not connected")]
    NoResponders(EdgeId),
    #[error("edge {0} did not answer within {1:?}")]
    Timeout(EdgeId, Duration),
    #[error("request to edge {0} failed: {1}")]
    Transport(EdgeId, String),
    #[error("edge {0} sent an unreadable reply: {1}")]
    BadReply(EdgeId, String),
}

#[derive(Clone)]
pub struct EdgeLink {
    nats: async_nats::Client,
    timeout: Duration,
}

impl EdgeLink {
    pub fn new(nats: async_nats::Client, timeout: Duration) -> Self {
        EdgeLink { nats, timeout }
    }

    pub async fn request(
        &self,
        edge: &EdgeId,
        req: &EdgeRequest,
    ) -> Result<EdgeReply, EdgeLinkError> {
        self.request_within(edge, req, self.timeout).await
    }

    pub async fn request_within(
        &self,
        edge: &EdgeId,
        req: &EdgeRequest,
        timeout: Duration,
    ) -> Result<EdgeReply, EdgeLinkError> {
        let payload = serde_json::to_vec(req)
            .map_err(|e| EdgeLinkError::Transport(edge.clone(), e.to_string()))?;
        let fut = self
            .nats
            .request(edge_control_subject(edge), payload.into());
        let msg = match tokio::time::timeout(timeout, fut).await {
            Err(_) => return Err(EdgeLinkError::Timeout(edge.clone(), timeout)),
            Ok(Err(e)) => {
                use async_nats::RequestErrorKind;
                return Err(match e.kind() {
                    RequestErrorKind::NoResponders => EdgeLinkError::NoResponders(edge.clone()),
                    RequestErrorKind::TimedOut => EdgeLinkError::Timeout(edge.clone(), timeout),
                    RequestErrorKind::Other
                    | RequestErrorKind::InvalidSubject
                    | RequestErrorKind::MaxPayloadExceeded => {
                        EdgeLinkError::Transport(edge.clone(), e.to_string())
                    }
                });
            }
            Ok(Ok(m)) => m,
        };
        serde_json::from_slice(&msg.payload)
            .map_err(|e| EdgeLinkError::BadReply(edge.clone(), e.to_string()))
    }
}
