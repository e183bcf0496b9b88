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

/// A certificate a server presents, loaded from its files and reloadable:
/// on SIGHUP [`serve`] reads the files again, so a renewed certificate is
/// in use for new connections without a restart (an edge restart would drop
/// every live class's media).
#[derive(Clone)]
pub struct Https {
    files: TlsFiles,
    config: axum_server::tls_rustls::RustlsConfig,
}

impl Https {
    /// Reads and checks the files now: a bad certificate stops the start.
    pub fn load(files: TlsFiles) -> Result<Https, TlsError> {
        let config = axum_server::tls_rustls::RustlsConfig::from_config(server_config(&files)?);
        Ok(Https { files, config })
    }

    /// `--tls-cert`/`--tls-key` as given: both, neither, or an error.
    pub fn from_pair(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<Https>, TlsError> {
        TlsFiles::from_pair(cert, key)?.map(Https::load).transpose()
    }

    /// Reads the files again; on any error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.config.reload_from_config(server_config(&self.files)?);
        Ok(())
    }
}

/// Serves `router` on `listener`, over TLS when `tls` is given, until
/// `shutdown` resolves (then open connections get ten seconds to finish).
/// With TLS, SIGHUP reloads the certificate and key from their files.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: Option<Https>,
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
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let reloader = tls.clone();
    tokio::spawn(async move {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(()) = hangups.recv() => match reloader.reload() {
                    Ok(()) => tracing::info!(cert = %reloader.files.cert.display(), "TLS certificate reloaded"),
                    Err(e) => tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays"),
                },
            }
        }
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let listener = listener.into_std()?;
    axum_server::from_tcp_rustls(listener, tls.config)?
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;

    fn self_signed(dir: &Path, name: &str) -> (TlsFiles, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        (files, cert.der().clone())
    }

    /// The leaf certificate a TLS handshake with `addr` presents.
    async fn presented(addr: SocketAddr, trust: &[CertificateDer<'static>]) -> Vec<u8> {
        let mut roots = rustls::RootCertStore::empty();
        for c in trust {
            roots.add(c.clone()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    #[tokio::test]
    async fn sighup_puts_a_renewed_certificate_in_use_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (old, old_der) = self_signed(dir.path(), "old");
        let (new, new_der) = self_signed(dir.path(), "new");
        let live = TlsFiles {
            cert: dir.path().join("live.pem"),
            key: dir.path().join("live.key"),
        };
        std::fs::copy(&old.cert, &live.cert).unwrap();
        std::fs::copy(&old.key, &live.key).unwrap();
        let https = Https::load(live.clone()).unwrap();
        let kept = https.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let server = tokio::spawn(serve(
            listener,
            axum::Router::new(),
            Some(https),
            async move { stopped.cancelled().await },
        ));
        let trust = [old_der.clone(), new_der.clone()];
        assert_eq!(presented(addr, &trust).await, old_der.to_vec());

        // a reload that finds a broken file fails, and the certificate in
        // use stays
        std::fs::write(&live.cert, b"not a certificate").unwrap();
        assert!(kept.reload().is_err());
        assert_eq!(presented(addr, &trust).await, old_der.to_vec());

        // the renewed files and a hangup: new connections get the new one
        std::fs::copy(&new.cert, &live.cert).unwrap();
        std::fs::copy(&new.key, &live.key).unwrap();
        let pid = std::process::id().to_string();
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(hup.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if presented(addr, &trust).await == new_der.to_vec() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the renewed certificate never came into use"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        server.await.unwrap().unwrap();
    }
}
