//! The edge node: home of live classes. Hosts each session's one writer
//! (its state and event log), the live feed, campus commands, and (with the
//! media plane) the SFU, composer and recorder.
#![warn(unreachable_pub)]

mod clock;
pub mod config;
mod control;
mod event_log;
mod fanout;
mod health;
mod http;
mod join_tokens;
mod mesh;
mod policy;
mod rate_limit;
pub mod recorder;
mod rtp;
mod runtime;
mod sfu;

use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::event_log::EventLog;
use crate::join_tokens::JoinTokens;
use crate::runtime::registry::Registry;

pub async fn serve(config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    // The edge's own user on its leaf node; replies come to an inbox prefix
    // only this edge's leaf identity may receive on the hub.
    let opts = match &config.nats_seed_file {
        Some(path) => {
            let seed = std::fs::read_to_string(path)
                .with_context(|| format!("reading the NATS seed {}", path.display()))?;
            async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
        }
        None => async_nats::ConnectOptions::new(),
    };
    let nats = opts
        .custom_inbox_prefix(protocol::subjects::edge_inbox_prefix(&config.edge_id))
        .name(format!("edge-{}", config.edge_id))
        .retry_on_initial_connect()
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(&config.nats_url)
        .await
        .with_context(|| format!("connecting to the leaf node at {}", config.nats_url))?;
    let log = loop {
        match EventLog::open(nats.clone(), config.edge_id.clone()).await {
            Ok(l) => break l,
            Err(e) => {
                tracing::warn!(error = %e, "event log not ready; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    };
    let registry = Registry::new(
        log,
        config.edge_id.clone(),
        rate_limit::RateLimits::new(config.rate_limits),
    );

    let uplink = match &config.relay_url {
        Some(url) => {
            let ca = match &config.relay_ca {
                Some(path) => {
                    std::fs::read(path).with_context(|| format!("relay CA {}", path.display()))?
                }
                None => Vec::new(),
            };
            mesh::Uplink::start(url.clone(), ca, config.edge_id.clone(), nats.clone())
        }
        None => mesh::Uplink::disabled(),
    };
    // the SFU hands hosted sessions' taps to the relay publisher (below)
    let (hosted_tx, hosted_rx) = tokio::sync::mpsc::unbounded_channel();
    let hosted_tx = config.relay_url.as_ref().map(|_| hosted_tx);
    let media_public = config.media_public.unwrap_or(config.media_udp);
    let sfu = sfu::Sfu::start(
        sfu::SfuConfig {
            bind: config.media_udp,
            public: media_public,
            grace: Duration::from_millis(config.media_grace_ms),
            quality_every: Duration::from_millis(config.media_quality_ms),
            idle: Duration::from_millis(config.media_idle_ms),
            connect_timeout: Duration::from_secs(15),
            max_public_viewers: config.max_public_viewers,
        },
        registry.clone(),
        hosted_tx,
    )
    .await
    .with_context(|| format!("binding the media socket {}", config.media_udp))?;
    if uplink.is_enabled() {
        tokio::spawn(mesh::bridge::publish_hosted(
            hosted_rx,
            uplink.clone(),
            nats.clone(),
            sfu.clone(),
            registry.clone(),
        ));
    }

    let location = match &config.object_store_url {
        Some(url) => hosting::objects::Location::parse(url)?,
        None => hosting::objects::Location::Dir(
            config
                .object_store_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("objects")),
        ),
    };
    // no silent fallback: an edge that cannot store recordings does not start
    let store = hosting::objects::open(&location)?;
    hosting::objects::check(&store, &location, Duration::from_secs(20)).await?;
    tracing::info!(store = %location.display(), "object store reachable");
    // core over HTTPS may be signed by a private CA
    let mut core_http = reqwest::Client::builder().timeout(Duration::from_secs(10));
    for ca in hosting::tls::client_roots(config.core_ca.as_deref())? {
        core_http = core_http.add_root_certificate(ca);
    }
    let core_http = core_http.build().context("an HTTP client for core")?;
    let tls = hosting::tls::Https::from_pair(config.tls_cert.clone(), config.tls_key.clone())?;
    registry.set_recorders(std::sync::Arc::new(recorder::Recorders::new(
        recorder::RecorderConfig {
            enabled: config.recording,
            spool: config
                .spool_dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("spool")),
            min_free_mb: config.spool_min_free_mb,
        },
        store,
        sfu.clone(),
        uplink.clone(),
        recorder::Captions::new(recorder::CaptionConfig {
            enabled: config.captions && config.recording,
            model: config.captions_model.clone(),
        }),
        core_http.clone(),
    )));
    registry
        .recover()
        .await
        .context("recovering sessions from the event log")?;

    let tokens = JoinTokens::new(
        config.edge_id.clone(),
        config.core_url.clone(),
        core_http.clone(),
        config.data_dir.join("jwks.json"),
    );
    tokio::spawn(tokens.clone().keep_fresh(stop.clone()));
    tokio::spawn(control::serve(
        nats.clone(),
        registry.clone(),
        config.edge_id.clone(),
        stop.clone(),
    ));
    tokio::spawn(health::run(
        nats.clone(),
        registry.clone(),
        sfu.clone(),
        config.clone(),
        stop.clone(),
    ));

    let remote_feeds =
        mesh::RemoteFeeds::new(sfu.clone(), uplink, nats.clone(), config.edge_id.clone());
    let state = http::EdgeState {
        registry,
        tokens,
        remote_feeds,
        sfu,
        config: config.clone(),
        nats,
        http_requests: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(edge_id = %config.edge_id, addr = %listener.local_addr()?, https = tls.is_some(), "edge listening");
    let shutdown = stop.clone();
    hosting::tls::serve(listener, http::router(state), tls, async move {
        shutdown.cancelled().await
    })
    .await?;
    Ok(())
}
