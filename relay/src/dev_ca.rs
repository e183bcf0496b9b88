//! The development CA: `relay gen-dev-ca <dir>` (and `deploy/dev-ca.sh`)
//! writes `ca.pem`/`ca.key` and a relay certificate `relay.pem`/`relay.key`
//! signed by it. Idempotent: existing files are kept, a missing relay
//! certificate is re-issued from the existing CA. Edges trust `ca.pem`.
//!
//! Development only: the CA key sits next to the certificates.

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Names every dev relay certificate carries, so `moqt://localhost:4443` and
/// `moqt://127.0.0.1:4443` both verify.
pub const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, thiserror::Error)]
pub enum DevCaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating a certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

/// Where the dev CA's files are.
#[derive(Debug, Clone)]
pub struct DevCaFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The names the relay certificate was issued for, one per line.
    pub names: PathBuf,
}

impl DevCaFiles {
    pub fn in_dir(dir: &Path) -> DevCaFiles {
        DevCaFiles::for_cert(dir, "relay")
    }

    /// The CA and the server certificate `<stem>.pem` in `dir`.
    pub fn for_cert(dir: &Path, stem: &str) -> DevCaFiles {
        DevCaFiles {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
            names: dir.join(format!("{stem}.names")),
        }
    }
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    ReissuedRelayCert,
    AlreadyThere,
}

/// Makes sure `dir` holds a dev CA and a relay certificate for `extra_names`
/// plus [`DEFAULT_NAMES`].
pub fn ensure(dir: &Path, extra_names: &[String]) -> Result<(DevCaFiles, Outcome), DevCaError> {
    ensure_cert(dir, "relay", extra_names)
}

/// Like [`ensure`], for the server certificate `<stem>.pem` (the NATS hub's
/// is `nats-hub`), from the same CA.
pub fn ensure_cert(
    dir: &Path,
    stem: &str,
    extra_names: &[String],
) -> Result<(DevCaFiles, Outcome), DevCaError> {
    let files = DevCaFiles::for_cert(dir, stem);
    std::fs::create_dir_all(dir).map_err(|source| DevCaError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|n| (*n).to_owned()).collect();
    for name in extra_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let ca_there = files.ca_cert.exists() && files.ca_key.exists();
    let issued: Vec<String> = std::fs::read_to_string(&files.names)
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    let leaf_there =
        files.cert.exists() && files.key.exists() && names.iter().all(|n| issued.contains(n));
    if ca_there && leaf_there {
        return Ok((files, Outcome::AlreadyThere));
    }

    let (issuer, outcome) = if ca_there {
        let key = KeyPair::from_pem(&read(&files.ca_key)?)?;
        (
            Issuer::from_ca_cert_pem(&read(&files.ca_cert)?, key)?,
            Outcome::ReissuedRelayCert,
        )
    } else {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "classroom dev CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        write(&files.ca_key, key.serialize_pem().as_bytes(), true)?;
        write(&files.ca_cert, cert.pem().as_bytes(), false)?;
        (Issuer::new(params, key), Outcome::Created)
    };

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("classroom {stem} (dev)"));
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &issuer)?;
    write(&files.key, key.serialize_pem().as_bytes(), true)?;
    write(&files.cert, cert.pem().as_bytes(), false)?;
    write(&files.names, names.join("\n").as_bytes(), false)?;
    Ok((files, outcome))
}

fn read(path: &Path) -> Result<String, DevCaError> {
    std::fs::read_to_string(path).map_err(|source| DevCaError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8], private: bool) -> Result<(), DevCaError> {
    let io = |source| DevCaError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_keeps_then_reissues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (files, outcome) = ensure(dir.path(), &[]).expect("create");
        assert_eq!(outcome, Outcome::Created);
        let ca = std::fs::read(&files.ca_cert).expect("ca");
        let leaf = std::fs::read(&files.cert).expect("leaf");

        let (_, outcome) = ensure(dir.path(), &[]).expect("again");
        assert_eq!(outcome, Outcome::AlreadyThere);
        assert_eq!(std::fs::read(&files.cert).expect("leaf"), leaf);

        std::fs::remove_file(&files.cert).expect("rm");
        let (_, outcome) = ensure(dir.path(), &[]).expect("reissue");
        assert_eq!(outcome, Outcome::ReissuedRelayCert);
        assert_eq!(std::fs::read(&files.ca_cert).expect("ca"), ca);
        assert_ne!(std::fs::read(&files.cert).expect("leaf"), leaf);

        // a name the certificate lacks: re-issued for it; then kept
        let extra = ["relay.example".to_owned()];
        let (_, outcome) = ensure(dir.path(), &extra).expect("new name");
        assert_eq!(outcome, Outcome::ReissuedRelayCert);
        let (_, outcome) = ensure(dir.path(), &extra).expect("same name");
        assert_eq!(outcome, Outcome::AlreadyThere);
        let (_, outcome) = ensure(dir.path(), &[]).expect("fewer names");
        assert_eq!(outcome, Outcome::AlreadyThere);
        assert_eq!(std::fs::read(&files.ca_cert).expect("ca"), ca);
        // the reissued leaf chains to the kept CA
        crate::tls::server_config(&files.cert, &files.key).expect("server config");
        crate::tls::client_config(std::slice::from_ref(&files.ca_cert)).expect("client config");
    }
}
