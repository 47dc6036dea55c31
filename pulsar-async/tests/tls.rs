//! The TLS configurations of `pulsar_async::tls` in in-memory handshakes against a rustls server
//! whose certificates are generated here with the `openssl` command: hostname verification,
//! the explicit opt-outs, wrong CA, and client certificates.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use pulsar_async::tls::{self, ClientCertificate, TlsOptions, TrustRoots};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// Certificates in a temporary directory: `ca`, `other-ca`, a server certificate for
/// `localhost`/`127.0.0.1` and a client certificate, both signed by `ca`.
struct Pki {
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir =
            std::env::temp_dir().join(format!("pulsar-async-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for ca in ["ca", "other-ca"] {
            openssl(
                &dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=test {ca}"),
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                ],
            );
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("client.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for (leaf, cn) in [("server", "localhost"), ("client", "client")] {
            openssl(
                &dir,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-subj",
                    &format!("/CN={cn}"),
                    "-keyout",
                    &format!("{leaf}.key"),
                    "-out",
                    &format!("{leaf}.csr"),
                ],
            );
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{leaf}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-out",
                    &format!("{leaf}.pem"),
                    "-extfile",
                    &format!("{leaf}.ext"),
                ],
            );
        }
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn server(&self, require_client_cert: bool) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.path("server.pem"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.path("server.key")).unwrap();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(self.path("ca.pem")).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(builder.with_single_cert(chain, key).unwrap())
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a handshake between a client for `host` and `server`, then sends one message each way.
fn handshake(client: &TlsOptions, host: &str, server: Arc<ServerConfig>) -> Result<(), String> {
    let config = tls::client_config(client).map_err(|e| e.to_string())?;
    let name = tls::server_name(host).map_err(|e| e.to_string())?;
    let mut c = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut s = ServerConnection::new(server).map_err(|e| e.to_string())?;
    use std::io::{Read, Write};
    c.writer().write_all(b"ping").unwrap();
    let mut got_ping = Vec::new();
    let mut got_pong = Vec::new();
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
        }
        let mut chunk = [0u8; 64];
        if let Ok(n) = s.reader().read(&mut chunk) {
            got_ping.extend_from_slice(&chunk[..n]);
            if got_ping == b"ping" {
                s.writer().write_all(b"pong").unwrap();
            }
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = buf.as_slice();
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
            c.process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
        }
        if let Ok(n) = c.reader().read(&mut chunk) {
            got_pong.extend_from_slice(&chunk[..n]);
        }
        if got_pong == b"pong" {
            return Ok(());
        }
    }
    Err("no exchange".into())
}

fn trusting(pki: &Pki, ca: &str) -> TlsOptions {
    let mut o = TlsOptions::default();
    o.trust = TrustRoots::PemFile(pki.path(ca));
    o
}

#[test]
fn hostname_verification_is_on_by_default() {
    let pki = Pki::new("hostname");
    let ok = trusting(&pki, "ca.pem");
    handshake(&ok, "localhost", pki.server(false)).unwrap();
    handshake(&ok, "127.0.0.1", pki.server(false)).unwrap();
    let err = handshake(&ok, "broker.example.com", pki.server(false)).unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");

    let mut skip = trusting(&pki, "ca.pem");
    skip.skip_hostname_verification = true;
    handshake(&skip, "broker.example.com", pki.server(false)).unwrap();
}

#[test]
fn wrong_ca_fails_even_when_skipping_the_hostname() {
    let pki = Pki::new("wrong-ca");
    let wrong = trusting(&pki, "other-ca.pem");
    let err = handshake(&wrong, "localhost", pki.server(false)).unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    let mut skip = wrong.clone();
    skip.skip_hostname_verification = true;
    let err = handshake(&skip, "localhost", pki.server(false)).unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");

    let mut insecure = wrong;
    insecure.accept_invalid_certificates = true;
    handshake(&insecure, "broker.example.com", pki.server(false)).unwrap();
}

#[test]
fn client_certificates() {
    let pki = Pki::new("mtls");
    let mut with_cert = trusting(&pki, "ca.pem");
    with_cert.client_certificate = Some(ClientCertificate::new(
        pki.path("client.pem"),
        pki.path("client.key"),
    ));
    handshake(&with_cert, "localhost", pki.server(true)).unwrap();
    let without = trusting(&pki, "ca.pem");
    let err = handshake(&without, "localhost", pki.server(true)).unwrap_err();
    assert!(err.contains("server"), "the server refuses: {err}");

    // A key that does not parse is reported when the configuration is built.
    let mut bad = trusting(&pki, "ca.pem");
    bad.client_certificate = Some(ClientCertificate::new(
        pki.path("client.pem"),
        pki.path("ca.pem"),
    ));
    assert!(tls::client_config(&bad).is_err());
}

#[test]
fn pem_bytes_trust() {
    let pki = Pki::new("pem-bytes");
    let mut o = TlsOptions::default();
    o.trust = TrustRoots::Pem(std::fs::read(pki.path("ca.pem")).unwrap());
    handshake(&o, "localhost", pki.server(false)).unwrap();
}
