//! TLS (rustls via futures-rustls, ring provider): a PEM certificate chain and key, or
//! a certificate generated at start (rcgen) whose PEM is written out for clients.

use futures_rustls::pki_types::pem::PemObject;
use futures_rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use futures_rustls::rustls::{self, ServerConfig};
use futures_rustls::TlsAcceptor;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS: certificate and key do not work together: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

pub fn from_files(cert: &str, key: &str) -> Result<TlsAcceptor, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("TLS: cannot read certificate {cert}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("TLS: bad certificate PEM in {cert}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("TLS: no certificate in {cert}"));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("TLS: cannot read a private key from {key}: {e}"))?;
    config(certs, key)
}

/// A fresh self-signed certificate for `localhost`, 127.0.0.1, ::1 and `extra` names;
/// its PEM goes to `dir/tls-self-signed.pem` (the key stays in memory).
pub fn self_signed(dir: &Path, extra: &[String]) -> Result<(TlsAcceptor, PathBuf), String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for n in extra {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("TLS: cannot generate a certificate: {e}"))?;
    // The data directory is private (0700), and so is everything in it.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(tau_io::DIR_MODE)
        .create(dir)
        .map_err(|e| format!("TLS: cannot create {}: {e}", dir.display()))?;
    let path = dir.join("tls-self-signed.pem");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(tau_io::FILE_MODE)
            .open(&path)?;
        f.set_permissions(std::fs::Permissions::from_mode(tau_io::FILE_MODE))?;
        f.write_all(ck.cert.pem().as_bytes())
    };
    write().map_err(|e| format!("TLS: cannot write {}: {e}", path.display()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    Ok((config(vec![ck.cert.der().clone()], key)?, path))
}
