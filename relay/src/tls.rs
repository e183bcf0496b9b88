//! TLS 1.3 and QUIC settings for both ends of a relay connection.
//!
//! Every rustls config is built with an explicit crypto provider (aws-lc-rs):
//! the workspace compiles both ring and aws-lc-rs into rustls, so the
//! `builder()` shortcuts would panic looking for a process default.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The only ALPN we speak, one copy with the mesh's clients.
pub use mesh_client::codes::ALPN;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0}: no certificate in the file")]
    NoCertificate(PathBuf),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("QUIC crypto configuration: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("generating a throwaway certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("no trust roots given")]
    NoRoots,
    #[error("{0}")]
    Client(#[from] mesh_client::connection::ClientConfigError),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// UDP socket buffers asked for (the kernel caps them at net.core.rmem_max /
/// wmem_max). The 208 KiB default overflows at a few tens of thousands of
/// packets per second, and every drop is a retransmission of live media.
const SOCKET_BUFFER: usize = 4 << 20;

/// Enlarges a UDP socket's buffers; best effort.
pub(crate) fn tune_socket(socket: &std::net::UdpSocket) {
    let s = socket2::SockRef::from(socket);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    tracing::debug!(
        recv = s.recv_buffer_size().unwrap_or(0),
        send = s.send_buffer_size().unwrap_or(0),
        "UDP socket buffers"
    );
}

/// The QUIC settings of both ends of a mesh link, one copy.
pub(crate) use mesh_client::connection::transport_config;

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn server_from_parts(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<quinn::ServerConfig, TlsError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    config.transport_config(transport_config());
    Ok(config)
}

/// The relay's server side: TLS 1.3 only, ALPN `moqt-18`.
pub fn server_config(cert: &Path, key: &Path) -> Result<quinn::ServerConfig, TlsError> {
    server_from_parts(load_certs(cert)?, load_key(key)?)
}

/// A throwaway self-signed certificate, so a relay started without TLS
/// flags (the old dev stack line) still comes up; nobody trusts it.
pub fn ephemeral_server_config() -> Result<quinn::ServerConfig, TlsError> {
    let names: Vec<String> = crate::dev_ca::DEFAULT_NAMES
        .iter()
        .map(|n| (*n).to_owned())
        .collect();
    let certified = rcgen::generate_simple_self_signed(names)?;
    let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_owned())))?;
    server_from_parts(vec![certified.cert.der().clone()], key)
}

/// Client side trusting exactly the CA certificates in `roots` (PEM files).
pub fn client_config(roots: &[PathBuf]) -> Result<quinn::ClientConfig, TlsError> {
    let mut certs = Vec::new();
    for path in roots {
        certs.extend(load_certs(path)?);
    }
    client_config_from_certs(certs)
}

fn client_config_from_certs(
    certs: Vec<CertificateDer<'static>>,
) -> Result<quinn::ClientConfig, TlsError> {
    if certs.is_empty() {
        return Err(TlsError::NoRoots);
    }
    Ok(mesh_client::connection::client_config(certs)?)
}
