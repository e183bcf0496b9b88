//! The hub stream `CLASS_EVENTS` in core's JetStream domain: it sources each
//! edge's `EV_<edge>` stream across that edge's leaf link and holds core's
//! own post-class events.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use protocol::EdgeId;
use protocol::subjects::{
    HUB_STREAM, core_stream_subjects, edge_domain, edge_stream_name, js_api_prefix,
};

/// How long events stay in the hub stream. Postgres is the long-term store.
const HUB_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

fn edge_source(edge: &EdgeId) -> stream::Source {
    stream::Source {
        name: edge_stream_name(edge),
        external: Some(stream::External {
            api_prefix: js_api_prefix(&edge_domain(edge)),
            delivery_prefix: None,
        }),
        ..Default::default()
    }
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
pub async fn ensure(js: &jetstream::Context, edges: &[EdgeId]) -> anyhow::Result<()> {
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

/// Adds an edge's stream to the hub's sources, if it is not there yet.
/// Returns whether the config changed.
pub async fn add_edge(js: &jetstream::Context, edge: &EdgeId) -> anyhow::Result<bool> {
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
    if sources.iter().any(|src| src.name == name) {
        return Ok(false);
    }
    sources.push(edge_source(edge));
    cfg.sources = Some(sources);
    js.update_stream(cfg)
        .await
        .map_err(|e| anyhow::anyhow!("adding {edge} to hub sources: {e}"))?;
    tracing::info!(edge_id = %edge, "hub stream now sources edge");
    Ok(true)
}
