//! The hub stream `CLASS_EVENTS` in core's JetStream domain: it sources each
//! edge's `EV_<edge>` stream across that edge's leaf link and holds core's
//! own post-class events.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use protocol::EdgeId;
use protocol::subjects::{
    HUB_STREAM, core_stream_subjects, edge_domain, edge_source_delivery_prefix, edge_stream_name,
    edge_stream_subjects, js_api_prefix,
};

/// How long events stay in the hub stream. Postgres is the long-term store.
const HUB_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The source of one edge's stream: only that edge's subjects are taken
/// (whatever else its stream may hold), delivered on a prefix only that
/// edge's NATS identity may publish to.
fn edge_source(edge: &EdgeId) -> stream::Source {
    stream::Source {
        name: edge_stream_name(edge),
        filter_subject: Some(edge_stream_subjects(edge)),
        external: Some(stream::External {
            api_prefix: js_api_prefix(&edge_domain(edge)),
            delivery_prefix: Some(edge_source_delivery_prefix(edge)),
        }),
        ..Default::default()
    }
}

fn same_source(a: &stream::Source, b: &stream::Source) -> bool {
    let ext = |s: &stream::Source| {
        s.external
            .as_ref()
            .map(|e| (e.api_prefix.clone(), e.delivery_prefix.clone()))
    };
    a.name == b.name && a.filter_subject == b.filter_subject && ext(a) == ext(b)
}

fn config(sources: Vec<stream::Source>) -> stream::Config {
    stream::Config {
        name: HUB_STREAM.to_owned(),
        subjects: vec![core_stream_subjects().to_owned()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        max_age: HUB_MAX_AGE,
        duplicate_window: Duration::from_secs(120),
        sources: if sources.is_empty() {
            None
        } else {
            Some(sources)
        },
        deny_delete: false,
        ..Default::default()
    }
}

/// Creates the hub stream if it is missing, sourcing the given edges.
pub(crate) async fn ensure(js: &jetstream::Context, edges: &[EdgeId]) -> anyhow::Result<()> {
    match js.get_stream(HUB_STREAM).await {
        Ok(_) => {
            for e in edges {
                add_edge(js, e).await?;
            }
            Ok(())
        }
        Err(_) => {
            js.create_stream(config(edges.iter().map(edge_source).collect()))
                .await
                .map_err(|e| anyhow::anyhow!("creating hub stream: {e}"))?;
            Ok(())
        }
    }
}

/// Adds an edge's stream to the hub's sources, if it is not there yet (or
/// is there with an older configuration).
/// Returns whether the config changed.
pub(crate) async fn add_edge(js: &jetstream::Context, edge: &EdgeId) -> anyhow::Result<bool> {
    let mut s = js
        .get_stream(HUB_STREAM)
        .await
        .map_err(|e| anyhow::anyhow!("reading hub stream: {e}"))?;
    let info = s
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("hub stream info: {e}"))?;
    let mut cfg = info.config.clone();
    let name = edge_stream_name(edge);
    let mut sources = cfg.sources.take().unwrap_or_default();
    let want = edge_source(edge);
    if sources.iter().any(|src| same_source(src, &want)) {
        return Ok(false);
    }
    // an older source of this edge (without the filter) is replaced
    sources.retain(|src| src.name != name);
    sources.push(want);
    cfg.sources = Some(sources);
    js.update_stream(cfg)
        .await
        .map_err(|e| anyhow::anyhow!("adding {edge} to hub sources: {e}"))?;
    tracing::info!(edge_id = %edge, "hub stream now sources edge");
    Ok(true)
}
