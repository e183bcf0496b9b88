//! A source task: pulls one track from its origin (a publishing session on
//! this relay, or the upstream relay) and reports objects to the driver.
//! One upstream SUBSCRIBE per track, however many subscribers it has here.

use std::sync::Arc;
use std::time::Duration;

use moq_transport::coding::{TrackName, TrackNamespace};
use moq_transport::serve::{self, ServeError, SubgroupReader, TrackReaderMode};
use moq_transport::session::Subscriber;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::driver::{Event, SourceEvent};
use crate::routing::{EndReason, SourceFailure, SourceKey};
use crate::upstream::UpstreamLink;

/// How long a track that ended may still drain its open groups.
const DRAIN: Duration = Duration::from_secs(2);

pub(crate) enum SourceOrigin {
    Session(Box<Subscriber>),
    Upstream(Arc<UpstreamLink>),
    /// The origin vanished between the router's decision and now.
    Gone,
}

pub(crate) async fn run(
    source: SourceKey,
    namespace: TrackNamespace,
    name: TrackName,
    origin: SourceOrigin,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) {
    let report = |event: SourceEvent| {
        let events = events.clone();
        async move { events.send(Event::Source { source, event }).await.is_ok() }
    };
    let (mut subscriber, upstream) = match origin {
        SourceOrigin::Session(subscriber) => (*subscriber, false),
        SourceOrigin::Upstream(link) => match link.subscriber().await {
            Ok(subscriber) => (subscriber, true),
            Err(error) => {
                tracing::warn!(%error, "upstream relay unreachable");
                report(SourceEvent::Failed(SourceFailure::Unavailable)).await;
                return;
            }
        },
        SourceOrigin::Gone => {
            report(SourceEvent::Failed(SourceFailure::Unavailable)).await;
            return;
        }
    };
    let (writer, reader) = serve::Track::new(namespace, name).produce();
    // Never cancelled: dropping a SUBSCRIBE while its request stream is being
    // opened closes the whole session (the publisher's, or the shared
    // upstream link), so a cancel only takes effect once this has returned.
    let subscription = match subscriber.subscribe_open(writer).await {
        Ok(s) => s,
        Err(error) => {
            let reason = match error {
                ServeError::NotFound | ServeError::NotFoundWithId(..) => SourceFailure::NotFound,
                _ => SourceFailure::Unavailable,
            };
            tracing::debug!(%error, upstream, "pull refused");
            report(SourceEvent::Failed(reason)).await;
            return;
        }
    };
    let largest_group = subscription
        .subscribe_ok()
        .and_then(|ok| ok.params.largest_object().ok().flatten())
        .map(|location| location.group_id);
    if !report(SourceEvent::Ready { largest_group }).await {
        return;
    }
    let reason = tokio::select! {
        _ = cancel.cancelled() => return, // drops `subscription`: UNSUBSCRIBE
        reason = read_track(source, reader, &events) => reason,
    };
    drop(subscription);
    report(SourceEvent::Ended(reason)).await;
}

/// Reads every group of the track, each in its own task (groups arrive on
/// separate streams and interleave), until the track ends.
async fn read_track(
    source: SourceKey,
    reader: serve::TrackReader,
    events: &mpsc::Sender<Event>,
) -> EndReason {
    let mode = match reader.mode().await {
        Ok(mode) => mode,
        Err(error) => return end_reason(&error),
    };
    let mut subgroups = match mode {
        TrackReaderMode::Subgroups(s) => s,
        // Our publishers only use subgroups; datagram or stream tracks are
        // refused rather than half-supported.
        TrackReaderMode::Datagrams(_) | TrackReaderMode::Stream(_) => {
            return EndReason::SourceLost;
        }
    };
    let mut groups = JoinSet::new();
    let reason = loop {
        tokio::select! {
            next = subgroups.next() => match next {
                Ok(Some(group)) => {
                    groups.spawn(read_group(source, group, events.clone()));
                }
                Ok(None) => break EndReason::TrackEnded,
                Err(error) => break end_reason(&error),
            },
            Some(_) = groups.join_next(), if !groups.is_empty() => {}
        }
    };
    // Let groups already on the wire finish, briefly; then the JoinSet's drop
    // aborts the rest.
    let _ =
        tokio::time::timeout(DRAIN, async { while groups.join_next().await.is_some() {} }).await;
    reason
}

async fn read_group(source: SourceKey, mut group: SubgroupReader, events: mpsc::Sender<Event>) {
    let group_id = group.group_id;
    let priority = group.priority;
    loop {
        let object = match group.next().await {
            Ok(Some(object)) => object,
            Ok(None) => break,
            Err(error) => {
                tracing::debug!(%error, group = group_id, "group reset upstream");
                break;
            }
        };
        let object_id = object.object_id;
        let mut object = object;
        let payload = match object.read_all().await {
            Ok(payload) => payload,
            Err(error) => {
                tracing::debug!(%error, group = group_id, "object cut short upstream");
                break;
            }
        };
        let event = SourceEvent::Object {
            group: group_id,
            object: object_id,
            priority,
            payload,
        };
        if events.send(Event::Source { source, event }).await.is_err() {
            return;
        }
    }
    let event = SourceEvent::GroupEnded { group: group_id };
    let _ = events.send(Event::Source { source, event }).await;
}

fn end_reason(error: &ServeError) -> EndReason {
    match error {
        // PUBLISH_DONE TRACK_ENDED / a clean end of the track.
        ServeError::Done | ServeError::Closed(0x2) => EndReason::TrackEnded,
        // GOING_AWAY, or the origin session itself went away.
        ServeError::Closed(0x4) | ServeError::Cancel => EndReason::PublisherGone,
        _ => EndReason::SourceLost,
    }
}
