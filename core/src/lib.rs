//! Classroom core: identity, orchestration, the event backbone's core side,
//! and (later) artifacts, replay and distribution.
#![warn(unreachable_pub)]

pub mod analytics;
mod artifacts;
pub mod audit;
mod classroom;
pub mod config;
mod consents;
mod console;
pub mod db;
mod destinations;
mod events;
pub mod http;
mod idempotency;
pub mod identity;
pub mod nats_auth;
pub mod openapi;
pub mod orchestration;
mod privacy;
mod public;
mod recordings;
mod replays;
mod retention;
pub mod seed;
mod subjects;
mod trust;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use protocol::EdgeId;
use protocol::subjects::HUB_DOMAIN;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::identity::signing_keys::SigningKeys;
use crate::orchestration::edge_link::EdgeLink;

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    db: PgPool,
    keys: SigningKeys,
    nats: async_nats::Client,
    js: jetstream::Context,
    edge_link: EdgeLink,
    config: Config,
    objects: Arc<dyn object_store::ObjectStore>,
    /// Public viewers per edge and session, from the edges' heartbeats.
    audience: std::sync::Mutex<public::AudienceBoard>,
    /// The replay search index, opened on first use.
    search: std::sync::OnceLock<Arc<classroom_search::Index>>,
    /// Token buckets for the console's writes.
    console_limits: console::rate_limit::ConsoleLimits,
    /// Sign-in and public-route limits.
    throttles: http::throttle::Throttles,
    /// Wakes the subject-job worker when a job is queued.
    subject_jobs: tokio::sync::Notify,
    /// The HTTP requests answered (`/metrics`).
    http_requests: protocol::metrics::HttpRequests,
    /// Each person's data key: seals and opens personal fields of events.
    vault: Arc<privacy::Vault>,
    /// Seals and opens recordings in the object store.
    recording_keys: Arc<privacy::RecordingKeys>,
    /// The key-encryption key (sealed secrets of integrations).
    kms: Arc<dyn privacy::kms::Kms>,
}

impl AppState {
    /// Fails when the key-encryption key cannot be read or made, or the
    /// object store cannot be opened.
    pub fn new(
        db: PgPool,
        keys: SigningKeys,
        nats: async_nats::Client,
        config: Config,
    ) -> anyhow::Result<Self> {
        let kms: Arc<dyn privacy::kms::Kms> =
            Arc::new(privacy::kms::LocalKms::load_or_create(&config.kek_path())?);
        let vault = Arc::new(privacy::Vault::new(kms.clone()));
        let recording_keys = Arc::new(privacy::RecordingKeys::new(db.clone(), kms.clone()));
        let js = jetstream::with_domain(nats.clone(), HUB_DOMAIN);
        let edge_link = EdgeLink::new(nats.clone(), Duration::from_millis(config.edge_timeout_ms));
        // no silent fallback: a core that cannot reach its object store
        // does not start (recordings, decks and exports would be lost)
        // recordings in it are sealed to their tenant's key
        let objects: Arc<dyn object_store::ObjectStore> =
            Arc::new(hosting::sealed::SealedStore::new(
                hosting::objects::open(&config.objects()?)?,
                recording_keys.clone(),
            ));
        Ok(AppState(Arc::new(Inner {
            db,
            keys,
            nats,
            js,
            edge_link,
            config,
            objects,
            audience: Default::default(),
            search: Default::default(),
            console_limits: Default::default(),
            throttles: Default::default(),
            subject_jobs: Default::default(),
            http_requests: Default::default(),
            vault,
            recording_keys,
            kms,
        })))
    }
    /// Each tenant's recording key pair.
    pub(crate) fn recording_keys(&self) -> &Arc<privacy::RecordingKeys> {
        &self.0.recording_keys
    }
    /// The key-encryption key.
    pub(crate) fn kms(&self) -> &Arc<dyn privacy::kms::Kms> {
        &self.0.kms
    }
    pub(crate) fn vault(&self) -> &Arc<privacy::Vault> {
        &self.0.vault
    }
    /// The HTTP requests answered so far.
    pub(crate) fn http_requests(&self) -> &protocol::metrics::HttpRequests {
        &self.0.http_requests
    }
    /// Tells the subject-job worker a job is queued.
    pub(crate) fn subject_jobs_wake(&self) {
        self.0.subject_jobs.notify_one();
    }
    /// Resolves when a subject job was queued.
    pub(crate) async fn subject_jobs_woken(&self) {
        self.0.subject_jobs.notified().await;
    }
    pub fn audience(&self) -> std::sync::MutexGuard<'_, public::AudienceBoard> {
        self.0.audience.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// The replay search index (`<data-dir>/search`).
    pub fn search(&self) -> anyhow::Result<Arc<classroom_search::Index>> {
        if let Some(i) = self.0.search.get() {
            return Ok(i.clone());
        }
        let dir = self.0.config.data_dir.join("search");
        std::fs::create_dir_all(&dir)?;
        let index = Arc::new(
            classroom_search::Index::open(&dir)
                .map_err(|e| anyhow::anyhow!("opening the search index: {e}"))?,
        );
        // two first callers at once: one index wins, the other is dropped
        Ok(self.0.search.get_or_init(|| index).clone())
    }
    /// Where edges upload recordings (and core keeps what it derives).
    pub fn objects(&self) -> &Arc<dyn object_store::ObjectStore> {
        &self.0.objects
    }
    pub fn console_limits(&self) -> &console::rate_limit::ConsoleLimits {
        &self.0.console_limits
    }
    pub fn throttles(&self) -> &http::throttle::Throttles {
        &self.0.throttles
    }
    pub fn db(&self) -> &PgPool {
        &self.0.db
    }
    pub fn keys(&self) -> &SigningKeys {
        &self.0.keys
    }
    pub fn nats(&self) -> &async_nats::Client {
        &self.0.nats
    }
    pub fn js(&self) -> &jetstream::Context {
        &self.0.js
    }
    pub fn edge_link(&self) -> &EdgeLink {
        &self.0.edge_link
    }
    pub fn config(&self) -> &Config {
        &self.0.config
    }
}

/// Connects to NATS, retrying while the hub comes up: with core's nkey when
/// given, replies on core's own inbox prefix (edges may answer into it but
/// never read it).
pub async fn connect_nats(
    url: &str,
    name: &str,
    seed_file: Option<&std::path::Path>,
) -> anyhow::Result<async_nats::Client> {
    let mut opts = match seed_file {
        Some(path) => async_nats::ConnectOptions::with_nkey(nats_auth::read_seed(path)?),
        None => async_nats::ConnectOptions::new(),
    };
    opts = opts
        .name(name)
        .custom_inbox_prefix(protocol::subjects::CORE_INBOX_PREFIX)
        .retry_on_initial_connect()
        .request_timeout(Some(Duration::from_secs(5)))
        .event_callback(|ev| async move {
            tracing::info!(event = %ev, "nats connection");
        });
    opts.connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

/// Runs core until `stop` fires: the HTTP API, edge registry, and ingest.
/// Where core keeps its signing key (and, beside it, the one a rotation
/// retired).
pub fn signing_key_path(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("signing-key.pem")
}

/// `core rotate-keys`: see [`SigningKeys::rotate`]. Returns (new kid,
/// retired kid).
pub fn rotate_signing_keys(config: &Config) -> anyhow::Result<(String, Option<String>)> {
    let kms = privacy::kms::LocalKms::load_or_create(&config.kek_path())?;
    SigningKeys::rotate(&signing_key_path(config), &kms)
}

pub async fn serve(config: Config, stop: CancellationToken) -> anyhow::Result<()> {
    let db = db::connect(&config).await?;
    db::migrate(&db).await?;
    let kms = privacy::kms::LocalKms::load_or_create(&config.kek_path())?;
    let keys = SigningKeys::load_or_create(&signing_key_path(&config), &kms)?;
    tracing::info!(kid = keys.kid(), "signing key loaded");
    let nats = connect_nats(&config.nats_url, "core", config.nats_seed_file.as_deref()).await?;
    let app = AppState::new(db.clone(), keys, nats.clone(), config.clone())?;
    let location = config.objects()?;
    hosting::objects::check(app.objects(), &location, Duration::from_secs(20)).await?;
    tracing::info!(store = %location.display(), "object store reachable");
    let tls = hosting::tls::Https::from_pair(config.tls_cert.clone(), config.tls_key.clone())?;

    let known: Vec<(String,)> = sqlx::query_as("SELECT id FROM edges")
        .fetch_all(&db)
        .await?;
    let known: Vec<EdgeId> = known
        .into_iter()
        .filter_map(|(id,)| EdgeId::new(id).ok())
        .collect();
    events::hub_stream::ensure(app.js(), &known).await?;

    let relay_tokens = tokio::spawn(orchestration::relay_tokens::run(app.clone(), stop.clone()));
    let health = tokio::spawn(orchestration::edges::run_health_listener(
        app.clone(),
        stop.clone(),
    ));
    let ingest = tokio::spawn(
        events::ingest::Ingest::new(db.clone(), nats.clone(), app.vault().clone())
            .run(app.js().clone(), stop.clone()),
    );
    let subject_jobs = tokio::spawn(subjects::run_worker(app.clone(), stop.clone()));
    let analytics = tokio::spawn(analytics::run(app.clone(), stop.clone()));
    let xapi = tokio::spawn(analytics::xapi::run_sender(app.clone(), stop.clone()));
    let joiner = tokio::spawn(recordings::run_joiner(app.clone(), stop.clone()));
    let retention = (config.retention_interval_secs > 0).then(|| {
        tokio::spawn(retention::sweep::run_scheduler(
            app.clone(),
            stop.clone(),
            Duration::from_secs(config.retention_interval_secs),
        ))
    });

    let (triggers, worker) = if config.artifacts {
        (
            Some(tokio::spawn(artifacts::pipeline::run_triggers(
                app.clone(),
                stop.clone(),
            ))),
            Some(tokio::spawn(artifacts::pipeline::run_worker(
                app.clone(),
                stop.clone(),
            ))),
        )
    } else {
        (None, None)
    };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(addr = %listener.local_addr()?, https = tls.is_some(), "core listening");
    let router = http::router(app.clone());
    let shutdown = stop.clone();
    // the caller's address reaches the handlers (per-address limits)
    hosting::tls::serve(
        listener,
        router,
        tls,
        async move { shutdown.cancelled().await },
    )
    .await?;
    stop.cancel();
    let _ = health.await;
    let _ = relay_tokens.await;
    let _ = ingest.await;
    let _ = subject_jobs.await;
    let _ = analytics.await;
    let _ = xapi.await;
    let _ = joiner.await;
    if let Some(r) = retention {
        let _ = r.await;
    }
    for t in [triggers, worker].into_iter().flatten() {
        let _ = t.await;
    }
    Ok(())
}
