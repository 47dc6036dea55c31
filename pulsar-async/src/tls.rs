//! TLS client configuration (rustls, aws-lc-rs provider), shared by every adapter.
//!
//! This module has no async runtime dependency: the blocking adapter uses it as it is, the async
//! adapters wrap their sockets with `futures-rustls` using the [`rustls::ClientConfig`] built here.
//!
//! Trust comes from a PEM file (or PEM bytes) or from the operating system's trust store. The system
//! store is read with `rustls-native-certs` rather than compiled-in Mozilla roots (`webpki-roots`):
//! Pulsar clusters are very often served with an organisation's private CA that administrators
//! install into the OS store, and the OS store is kept up to date by the OS rather than frozen into
//! the binary. A machine without a trust store gives a clear [`TlsError::SystemRoots`] error at
//! build time.
//!
//! Hostname verification is on by default; [`TlsOptions::skip_hostname_verification`] (still
//! checking the chain) and [`TlsOptions::accept_invalid_certificates`] (checking nothing but the
//! handshake signatures) are explicit opt-ins for tests.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Where the certificates that may sign the broker's certificate come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustRoots {
    /// The operating system's trust store.
    #[default]
    System,
    /// Every certificate of a PEM file (Pulsar's `tlsTrustCertsFilePath`).
    PemFile(PathBuf),
    /// Every certificate of PEM text.
    Pem(Vec<u8>),
}

/// A client certificate for mutual TLS (and Pulsar's TLS authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCertificate {
    /// PEM file with the certificate chain, leaf first.
    pub cert_chain: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

impl ClientCertificate {
    /// A certificate chain and its key, both PEM files.
    pub fn new(cert_chain: impl Into<PathBuf>, private_key: impl Into<PathBuf>) -> Self {
        ClientCertificate {
            cert_chain: cert_chain.into(),
            private_key: private_key.into(),
        }
    }
}

/// TLS settings of a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Trusted certificate authorities.
    pub trust: TrustRoots,
    /// Client certificate presented to the broker (mTLS).
    pub client_certificate: Option<ClientCertificate>,
    /// Accept a certificate whose names do not match the host connected to (the chain is still
    /// verified). For tests only.
    pub skip_hostname_verification: bool,
    /// Accept any certificate (only the handshake signature is checked). For tests only.
    pub accept_invalid_certificates: bool,
    /// Refuse `pulsar://` service URLs and plain-text broker addresses.
    pub require_tls: bool,
}

impl TlsOptions {
    /// Whether anything differs from the defaults (system roots, full verification).
    pub fn is_customized(&self) -> bool {
        *self != TlsOptions::default()
    }
}

/// Why a TLS configuration could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {path}: {reason}")]
    Pem {
        /// The file (or `<memory>`).
        path: String,
        /// Why.
        reason: String,
    },
    /// A trust or certificate chain file holds no certificate.
    #[error("no certificate in {0}")]
    NoCertificate(String),
    /// No usable trusted certificate (all were rejected, or the system store is empty).
    #[error("no usable trust anchor: {0}")]
    NoTrustAnchor(String),
    /// The system trust store could not be loaded.
    #[error("cannot load the system trust store: {0}")]
    SystemRoots(String),
    /// The client certificate or key was rejected.
    #[error("invalid client certificate or key: {0}")]
    ClientCertificate(String),
    /// Another rustls configuration error.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The host is not a valid DNS name or IP address for TLS.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

/// The crypto provider every configuration uses: aws-lc-rs, rustls's default provider, which
/// offers the post-quantum hybrid key exchange X25519MLKEM768 first and classical groups after it
/// (ring's provider lacks it and is deprecated). Not the process-wide default, so nothing depends
/// on which provider other code installed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the rustls client configuration for `options`.
///
/// Reads the PEM files now, so a wrong path fails here rather than at the first connection.
pub fn client_config(options: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if options.accept_invalid_certificates {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
    } else {
        let roots = Arc::new(root_store(&options.trust)?);
        if options.skip_hostname_verification {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(IgnoreHostname { inner }))
        } else {
            builder.with_root_certificates(roots)
        }
    };
    let config = match &options.client_certificate {
        None => builder.with_no_client_auth(),
        Some(cert) => {
            let chain = read_certificates(&cert.cert_chain)?;
            let key =
                PrivateKeyDer::from_pem_file(&cert.private_key).map_err(|e| TlsError::Pem {
                    path: cert.private_key.display().to_string(),
                    reason: e.to_string(),
                })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::ClientCertificate(e.to_string()))?
        }
    };
    Ok(Arc::new(config))
}

/// The TLS server name for a broker host (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}

/// Every certificate of a PEM file.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let display = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: display.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(display));
    }
    Ok(certs)
}

fn root_store(trust: &TrustRoots) -> Result<RootCertStore, TlsError> {
    let (certs, origin) = match trust {
        TrustRoots::PemFile(path) => (read_certificates(path)?, path.display().to_string()),
        TrustRoots::Pem(pem) => {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Pem {
                    path: "<memory>".into(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(TlsError::NoCertificate("<memory>".into()));
            }
            (certs, "<memory>".to_string())
        }
        TrustRoots::System => {
            let loaded = rustls_native_certs::load_native_certs();
            if loaded.certs.is_empty() {
                let reason = match loaded.errors.first() {
                    Some(e) => e.to_string(),
                    None => "no certificate found".to_string(),
                };
                return Err(TlsError::SystemRoots(reason));
            }
            for e in &loaded.errors {
                tracing::debug!(error = %e, "skipping part of the system trust store");
            }
            (loaded.certs, "the system trust store".to_string())
        }
    };
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::NoTrustAnchor(format!(
            "{ignored} certificate(s) in {origin}, none usable as a trust anchor"
        )));
    }
    Ok(store)
}

/// Verifies the chain and signatures like the default verifier, but accepts a name mismatch.
#[derive(Debug)]
struct IgnoreHostname {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for IgnoreHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate; checks only that the handshake is signed by the presented key.
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for AcceptAnyCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptAnyCertificate")
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The TLS settings of a running client, with the rustls configuration built once (at start when
/// TLS is wanted, otherwise at the first TLS connection) and shared by its connections.
#[derive(Debug, Clone)]
pub struct TlsContext {
    options: TlsOptions,
    config: Arc<std::sync::Mutex<Option<Arc<rustls::ClientConfig>>>>,
}

impl TlsContext {
    /// A context for `options`; builds the configuration now when `eager` (so bad files fail at
    /// start).
    pub fn new(options: TlsOptions, eager: bool) -> Result<TlsContext, TlsError> {
        let config = if eager {
            Some(client_config(&options)?)
        } else {
            None
        };
        Ok(TlsContext {
            options,
            config: Arc::new(std::sync::Mutex::new(config)),
        })
    }

    /// Whether plain-text connections are refused.
    pub fn require_tls(&self) -> bool {
        self.options.require_tls
    }

    /// The rustls configuration (built on first use).
    pub fn config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut slot = self
            .config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = client_config(&self.options)?;
        *slot = Some(c.clone());
        Ok(c)
    }
}

/// A readable description of a failed TLS handshake (`io::Error` wrapping a rustls error).
pub fn describe_handshake_error(host: &str, port: u16, error: &std::io::Error) -> String {
    format!("TLS handshake with {host}:{port} failed: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_fail_at_build_time() {
        let options = TlsOptions {
            trust: TrustRoots::PemFile("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        match client_config(&options) {
            Err(TlsError::Pem { path, .. }) => assert_eq!(path, "/nonexistent/ca.pem"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            client_config(&TlsOptions {
                trust: TrustRoots::Pem(b"not pem".to_vec()),
                ..Default::default()
            }),
            Err(TlsError::NoCertificate(_))
        ));
    }

    #[test]
    fn server_names() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("broker-1.example.com").is_ok());
        assert!(matches!(
            server_name("bad name"),
            Err(TlsError::ServerName(_))
        ));
    }

    #[test]
    fn accept_invalid_needs_no_trust_anchor() {
        let options = TlsOptions {
            trust: TrustRoots::Pem(Vec::new()),
            accept_invalid_certificates: true,
            ..Default::default()
        };
        assert!(client_config(&options).is_ok());
        assert!(options.is_customized());
        assert!(!TlsOptions::default().is_customized());
    }

    #[test]
    fn post_quantum_key_exchange_is_offered_first() {
        let options = TlsOptions {
            accept_invalid_certificates: true,
            ..Default::default()
        };
        let config = client_config(&options).unwrap();
        let groups: Vec<_> = config
            .crypto_provider()
            .kx_groups
            .iter()
            .map(|g| g.name())
            .collect();
        assert_eq!(groups.first(), Some(&rustls::NamedGroup::X25519MLKEM768));
        assert!(groups.contains(&rustls::NamedGroup::X25519), "{groups:?}");
    }
}
