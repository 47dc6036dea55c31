//! The TLS listener's certificate and key (rustls on aws-lc-rs).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::server::Error;

/// A TLS listener's identity: a PEM certificate chain and its PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert_chain_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl TlsConfig {
    /// A configuration from the two PEM files.
    pub fn new(cert_chain_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> TlsConfig {
        TlsConfig {
            cert_chain_file: cert_chain_file.into(),
            key_file: key_file.into(),
        }
    }

    pub(crate) fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, Error> {
        let certs = CertificateDer::pem_file_iter(&self.cert_chain_file)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::Tls(format!("{}: {e}", self.cert_chain_file.display())))?;
        let key = PrivateKeyDer::from_pem_file(&self.key_file)
            .map_err(|e| Error::Tls(format!("{}: {e}", self.key_file.display())))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::Tls(e.to_string()))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}
