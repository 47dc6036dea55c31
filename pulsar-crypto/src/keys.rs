//! Key readers: the [`CryptoKeyReader`] trait (Java's `CryptoKeyReader`), the PEM reader
//! [`PemKeyReader`], and the parsing of PEM keys into `aws-lc-rs` RSA and EC keys.

use std::fmt;
use std::path::PathBuf;

use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, OaepPublicEncryptingKey};
use aws_lc_rs::rsa::{PrivateDecryptingKey, PublicEncryptingKey};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::ecies::{self, EcPublic};

/// A key as a key reader supplies it: PEM text (or DER bytes) and its metadata. The bytes are
/// zeroized on drop and never printed.
#[derive(Clone)]
pub struct EncryptionKeyInfo {
    key: Zeroizing<Vec<u8>>,
    /// Metadata of the key. A producer writes a public key's metadata next to the data key it
    /// wrapped; a consumer's key reader gets it back when asked for the private key.
    pub metadata: Vec<(String, String)>,
}

impl EncryptionKeyInfo {
    /// A key from its PEM text or DER bytes, without metadata.
    pub fn new(key: impl Into<Vec<u8>>) -> EncryptionKeyInfo {
        EncryptionKeyInfo {
            key: Zeroizing::new(key.into()),
            metadata: Vec::new(),
        }
    }

    /// Sets the metadata (builder style).
    pub fn with_metadata(mut self, metadata: Vec<(String, String)>) -> EncryptionKeyInfo {
        self.metadata = metadata;
        self
    }

    /// The key's bytes.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for EncryptionKeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeyInfo")
            .field("key", &"<redacted>")
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// Why a key reader could not supply a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyReadError(pub String);

/// Supplies the public keys a producer wraps data keys with and the private keys a consumer
/// unwraps them with, by key name (Java's `CryptoKeyReader`).
pub trait CryptoKeyReader: Send + Sync + fmt::Debug {
    /// The public key named `name` (PEM: `PUBLIC KEY` or `RSA PUBLIC KEY`).
    fn public_key(
        &self,
        name: &str,
        metadata: &[(String, String)],
    ) -> Result<EncryptionKeyInfo, KeyReadError>;

    /// The private key named `name` (PEM: `PRIVATE KEY` or `RSA PRIVATE KEY`); `metadata` is
    /// what the producer's key reader attached to the public key.
    fn private_key(
        &self,
        name: &str,
        metadata: &[(String, String)],
    ) -> Result<EncryptionKeyInfo, KeyReadError>;
}

/// Where a [`PemKeyReader`] finds a key.
#[derive(Clone)]
enum Source {
    None,
    File(PathBuf),
    Bytes(Zeroizing<Vec<u8>>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::None => f.write_str("None"),
            Source::File(p) => write!(f, "File({})", p.display()),
            Source::Bytes(_) => f.write_str("Bytes(<redacted>)"),
        }
    }
}

impl Source {
    fn read(&self, what: &str) -> Result<EncryptionKeyInfo, KeyReadError> {
        match self {
            Source::None => Err(KeyReadError(format!("no {what} key configured"))),
            Source::File(path) => std::fs::read(path)
                .map(EncryptionKeyInfo::new)
                .map_err(|e| KeyReadError(format!("reading {}: {e}", path.display()))),
            Source::Bytes(b) => Ok(EncryptionKeyInfo::new(b.to_vec())),
        }
    }
}

/// A key reader that gives the same PEM public and private key for every key name, read from
/// files (on every call, as Java's `DefaultCryptoKeyReader` does) or held in memory.
#[derive(Debug, Clone)]
pub struct PemKeyReader {
    public: Source,
    private: Source,
}

impl PemKeyReader {
    /// Reads the public key from `public` and the private key from `private` (either may be
    /// `None`: a producer needs only the public key, a consumer only the private one).
    pub fn files(public: Option<PathBuf>, private: Option<PathBuf>) -> PemKeyReader {
        PemKeyReader {
            public: public.map_or(Source::None, Source::File),
            private: private.map_or(Source::None, Source::File),
        }
    }

    /// Holds PEM keys in memory (zeroized on drop).
    pub fn pems(public: Option<Vec<u8>>, private: Option<Vec<u8>>) -> PemKeyReader {
        let held = |b: Vec<u8>| Source::Bytes(Zeroizing::new(b));
        PemKeyReader {
            public: public.map_or(Source::None, held),
            private: private.map_or(Source::None, held),
        }
    }
}

impl CryptoKeyReader for PemKeyReader {
    fn public_key(
        &self,
        _name: &str,
        _metadata: &[(String, String)],
    ) -> Result<EncryptionKeyInfo, KeyReadError> {
        self.public.read("public")
    }

    fn private_key(
        &self,
        _name: &str,
        _metadata: &[(String, String)],
    ) -> Result<EncryptionKeyInfo, KeyReadError> {
        self.private.read("private")
    }
}

/// The DER of the first PEM block of `text` whose label is one of `labels`, with its label;
/// the bytes itself when `text` is not PEM (DER given directly).
fn pem_der(
    text: &[u8],
    labels: &[&'static str],
) -> Result<(Option<&'static str>, Zeroizing<Vec<u8>>), String> {
    let Ok(s) = std::str::from_utf8(text) else {
        return Ok((None, Zeroizing::new(text.to_vec())));
    };
    if !s.contains("-----BEGIN ") {
        return Ok((None, Zeroizing::new(text.to_vec())));
    }
    for label in labels {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let Some(start) = s.find(&begin) else {
            continue;
        };
        let body = &s[start + begin.len()..];
        let Some(stop) = body.find(&end) else {
            return Err(format!("PEM block {label} has no end line"));
        };
        let mut b64 = Zeroizing::new(String::with_capacity(stop));
        b64.extend(body[..stop].chars().filter(|c| !c.is_ascii_whitespace()));
        // room for all of it up front: decoding never reallocates (no copy left unzeroized)
        let mut der = Zeroizing::new(Vec::with_capacity(b64.len() / 4 * 3 + 3));
        base64::engine::general_purpose::STANDARD
            .decode_vec(b64.as_bytes(), &mut der)
            .map_err(|e| format!("PEM block {label}: {e}"))?;
        return Ok((Some(label), der));
    }
    Err(format!("no PEM block of type {}", labels.join(" or ")))
}

/// The DER of `SEQUENCE`, `INTEGER`, `OCTET STRING` ... of `content` with its tag and length.
fn der_tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// `AlgorithmIdentifier { rsaEncryption, NULL }`.
const RSA_ALGORITHM: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// A PKCS#1 `RSAPrivateKey` wrapped as a PKCS#8 `PrivateKeyInfo`.
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut inner = Zeroizing::new(Vec::with_capacity(pkcs1.len() + 32));
    inner.extend_from_slice(&[0x02, 0x01, 0x00]);
    inner.extend_from_slice(&RSA_ALGORITHM);
    der_tlv(0x04, pkcs1, &mut inner);
    let mut out = Zeroizing::new(Vec::with_capacity(inner.len() + 8));
    der_tlv(0x30, &inner, &mut out);
    out
}

/// A PKCS#1 `RSAPublicKey` wrapped as a `SubjectPublicKeyInfo`.
fn pkcs1_to_spki(pkcs1: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(pkcs1.len() + 1);
    bits.push(0);
    bits.extend_from_slice(pkcs1);
    let mut inner = RSA_ALGORITHM.to_vec();
    der_tlv(0x03, &bits, &mut inner);
    let mut out = Vec::with_capacity(inner.len() + 8);
    der_tlv(0x30, &inner, &mut out);
    out
}

/// A public key a data key is wrapped with.
pub(crate) enum WrapKey {
    /// RSA-OAEP with SHA-1 and MGF1-SHA-1.
    Rsa(OaepPublicEncryptingKey),
    /// ECIES as BouncyCastle does it (see `ecies.rs`).
    Ec(EcPublic),
}

/// A private key a data key is unwrapped with. It lives in AWS-LC, which clears it when freed.
pub(crate) enum UnwrapKey {
    /// RSA-OAEP with SHA-1 and MGF1-SHA-1.
    Rsa(OaepPrivateDecryptingKey),
    /// ECIES as BouncyCastle does it.
    Ec(aws_lc_rs::agreement::PrivateKey),
}

/// An RSA or EC public key from PEM (`PUBLIC KEY`, `RSA PUBLIC KEY`) or DER.
pub(crate) fn public_key(info: &EncryptionKeyInfo) -> Result<WrapKey, String> {
    let (label, der) = pem_der(info.key(), &["PUBLIC KEY", "RSA PUBLIC KEY"])?;
    let spki = if label == Some("RSA PUBLIC KEY") {
        pkcs1_to_spki(&der)
    } else {
        der.to_vec()
    };
    if let Ok(key) = PublicEncryptingKey::from_der(&spki) {
        return OaepPublicEncryptingKey::new(key)
            .map(WrapKey::Rsa)
            .map_err(|_| "unusable RSA public key".to_string());
    }
    ecies::ec_public(&spki)
        .map(WrapKey::Ec)
        .ok_or_else(|| "not an RSA or EC (P-256, P-384, P-521) public key".to_string())
}

/// An RSA or EC private key from PEM (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`) or
/// DER (PKCS#8, PKCS#1, SEC 1).
pub(crate) fn private_key(info: &EncryptionKeyInfo) -> Result<UnwrapKey, String> {
    let (label, der) = pem_der(
        info.key(),
        &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
    )?;
    let pkcs8 = if label == Some("RSA PRIVATE KEY") {
        pkcs1_to_pkcs8(&der)
    } else {
        der
    };
    let rsa = PrivateDecryptingKey::from_pkcs8(&pkcs8)
        .or_else(|_| PrivateDecryptingKey::from_pkcs8(&pkcs1_to_pkcs8(&pkcs8)));
    if let Ok(key) = rsa {
        return OaepPrivateDecryptingKey::new(key)
            .map(UnwrapKey::Rsa)
            .map_err(|_| "unusable RSA private key".to_string());
    }
    ecies::ec_private(&pkcs8)
        .map(UnwrapKey::Ec)
        .ok_or_else(|| "not an RSA or EC (P-256, P-384, P-521) private key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_der_lengths_are_encoded_in_long_form() {
        let mut out = Vec::new();
        der_tlv(0x04, &[0u8; 300], &mut out);
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(out.len(), 304);
    }

    #[test]
    fn malformed_pem_is_an_error_not_a_panic() {
        for text in [
            &b"-----BEGIN PUBLIC KEY-----\nAAAA"[..],
            b"-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n",
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            b"\xff\x00garbage",
            b"",
        ] {
            let info = EncryptionKeyInfo::new(text.to_vec());
            assert!(public_key(&info).is_err());
            assert!(private_key(&info).is_err());
        }
    }

    #[test]
    fn key_bytes_are_not_printed() {
        let info = EncryptionKeyInfo::new(b"secret".to_vec());
        assert!(!format!("{info:?}").contains("secret"));
        let reader = PemKeyReader::pems(None, Some(b"secret".to_vec()));
        assert!(!format!("{reader:?}").contains("secret"));
    }
}
