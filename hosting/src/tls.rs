//! HTTPS for core and the edge: given a certificate chain and its key
//! (PEM files, e.g. from the campus's CA or the dev CA `deploy/dev.sh`
//! makes with `DEV_TLS=1`), a service serves its router over TLS 1.2/1.3
//! with HTTP/2 and HTTP/1.1 (websockets included); without them, plain
//! HTTP as before. Either way the handlers see the peer's address
//! (`ConnectInfo<SocketAddr>`) and stop on the same shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain (leaf first) and its private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Both paths or neither: one without the other is a configuration
    /// mistake worth refusing to start on.
    pub fn from_pair(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, TlsError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
            (None, None) => Ok(None),
            _ => Err(TlsError::Pair),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "a TLS certificate needs its key and a key its certificate (--tls-cert with --tls-key)"
    )]
    Pair,
    #[error("{}: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{}: no certificate in the file", .0.display())]
    NoCert(PathBuf),
    #[error("the certificate and key do not make a TLS server: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls server configuration for `files` (ALPN h2 and http/1.1).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let pem = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| pem(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem(&files.cert, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCert(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener`, over TLS when `tls` is given, until
/// `shutdown` resolves (then open connections get ten seconds to finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let Some(tls) = tls else {
        return axum::serve(listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
    };
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let listener = listener.into_std()?;
    axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(tls),
    )?
    .handle(handle)
    .serve(service)
    .await
}

/// A client that trusts the system's roots plus `ca` (PEM), for a service
/// that calls another over HTTPS signed by a private CA (the edge fetching
/// core's keys).
pub fn client_roots(ca: Option<&Path>) -> Result<Vec<reqwest::Certificate>, TlsError> {
    let Some(ca) = ca else {
        return Ok(Vec::new());
    };
    let bytes = std::fs::read(ca).map_err(|e| TlsError::Pem {
        path: ca.to_path_buf(),
        reason: e.to_string(),
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&bytes).map_err(|e| TlsError::Pem {
        path: ca.to_path_buf(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TlsError::NoCert(ca.to_path_buf()));
    }
    Ok(certs)
}
