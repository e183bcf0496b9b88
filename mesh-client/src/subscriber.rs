//! Subscribing to one track: MoQ groups (each on its own stream, so
//! interleaved) in, packets out in order.

use bytes::Bytes;
use moq_transport::serve::{ServeError, TrackReader, TrackReaderMode};
use moq_transport::session::Subscribe;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::MeshError;
use crate::connection::CloseReason;
use crate::reorder::Reorder;
use crate::wire::{self, MediaPacket};

/// Pieces from the per-group reader tasks, buffered ahead of `next()`.
const PIECES: usize = 1024;

/// A packet received from the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPacket {
    pub packet: MediaPacket,
    /// The MoQ group (one keyframe interval) and object within it.
    pub group: u64,
    pub object: u64,
    /// Packets were skipped just before this one (a stalled group was given
    /// up, or an object did not decode): ask the sender for a keyframe.
    pub discontinuity: bool,
}

enum Piece {
    Object {
        group: u64,
        object: u64,
        payload: Bytes,
    },
    GroupEnd {
        group: u64,
    },
    TrackEnd(Result<(), ServeError>),
}

/// Yields a track's packets in order. Dropping it unsubscribes.
pub struct TrackSubscriber {
    name: String,
    _subscription: Subscribe,
    pieces: mpsc::Receiver<Piece>,
    reorder: Reorder,
    closed: watch::Receiver<Option<CloseReason>>,
    ended: Option<MeshError>,
    gap: bool,
    _reader: tokio::task::JoinHandle<()>,
}

impl TrackSubscriber {
    pub(crate) fn new(
        name: String,
        subscription: Subscribe,
        reader: TrackReader,
        closed: watch::Receiver<Option<CloseReason>>,
    ) -> TrackSubscriber {
        let (tx, pieces) = mpsc::channel(PIECES);
        let reader = tokio::spawn(read_track(reader, tx));
        TrackSubscriber {
            name,
            _subscription: subscription,
            pieces,
            reorder: Reorder::default(),
            closed,
            ended: None,
            gap: false,
            _reader: reader,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Objects dropped so far because they arrived after their group was
    /// passed (stragglers of a skipped or older group).
    pub fn dropped(&self) -> u64 {
        self.reorder.dropped()
    }

    /// The next packet in order. After the track ends every call returns the
    /// same error: [`MeshError::TrackEnded`] (subscribe again),
    /// [`MeshError::Disconnected`] (reconnect), ...
    pub async fn next(&mut self) -> Result<ReceivedPacket, MeshError> {
        loop {
            if let Some(r) = self.reorder.pop() {
                match wire::decode(&r.payload) {
                    Ok(packet) => {
                        let discontinuity = r.discontinuity || std::mem::take(&mut self.gap);
                        return Ok(ReceivedPacket {
                            packet,
                            group: r.group,
                            object: r.object,
                            discontinuity,
                        });
                    }
                    Err(error) => {
                        tracing::warn!(track = %self.name, %error, "undecodable media object skipped");
                        self.gap = true;
                        continue;
                    }
                }
            }
            if let Some(error) = &self.ended {
                return Err(error.clone());
            }
            match self.pieces.recv().await {
                Some(Piece::Object {
                    group,
                    object,
                    payload,
                }) => self.reorder.push(group, object, payload),
                Some(Piece::GroupEnd { group }) => self.reorder.end(group),
                Some(Piece::TrackEnd(result)) => {
                    self.reorder.finish();
                    self.ended = Some(self.end_error(result));
                }
                None => {
                    self.reorder.finish();
                    self.ended = Some(self.end_error(Err(ServeError::Cancel)));
                }
            }
        }
    }

    fn end_error(&self, result: Result<(), ServeError>) -> MeshError {
        if let Some(reason) = self.closed.borrow().as_ref() {
            return reason.to_error();
        }
        match result {
            Ok(()) => MeshError::TrackEnded,
            Err(error) => track_error(&error),
        }
    }
}

/// What a subscription error means for the caller.
pub(crate) fn track_error(error: &ServeError) -> MeshError {
    match error {
        ServeError::NotFound | ServeError::NotFoundWithId(..) => MeshError::NotFound,
        // PUBLISH_DONE TRACK_ENDED / GOING_AWAY: the publisher stopped or left.
        ServeError::Done | ServeError::Closed(0x2) | ServeError::Closed(0x4) => {
            MeshError::TrackEnded
        }
        ServeError::Cancel => MeshError::Disconnected("subscription cancelled".to_owned()),
        other => MeshError::Unavailable(other.to_string()),
    }
}

async fn read_track(reader: TrackReader, tx: mpsc::Sender<Piece>) {
    let mode = match reader.mode().await {
        Ok(mode) => mode,
        Err(error) => {
            let _ = tx.send(Piece::TrackEnd(Err(error))).await;
            return;
        }
    };
    let mut subgroups = match mode {
        TrackReaderMode::Subgroups(s) => s,
        TrackReaderMode::Datagrams(_) | TrackReaderMode::Stream(_) => {
            let error = ServeError::Internal("not a subgroups track".to_owned());
            let _ = tx.send(Piece::TrackEnd(Err(error))).await;
            return;
        }
    };
    // Each group in its own task: reading them one after another stalls when
    // the publisher opens group N+1 before group N's stream is finished.
    let mut groups = JoinSet::new();
    let end = loop {
        tokio::select! {
            next = subgroups.next() => match next {
                Ok(Some(mut group)) => {
                    let tx = tx.clone();
                    groups.spawn(async move {
                        let id = group.group_id;
                        while let Ok(Some(mut object)) = group.next().await {
                            let object_id = object.object_id;
                            let Ok(payload) = object.read_all().await else { break };
                            let piece = Piece::Object { group: id, object: object_id, payload };
                            if tx.send(piece).await.is_err() {
                                return;
                            }
                        }
                        let _ = tx.send(Piece::GroupEnd { group: id }).await;
                    });
                }
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            },
            Some(_) = groups.join_next(), if !groups.is_empty() => {}
        }
    };
    // Groups already on the wire may finish; a stuck one is cut off.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while groups.join_next().await.is_some() {}
    })
    .await;
    let _ = tx.send(Piece::TrackEnd(end)).await;
}
