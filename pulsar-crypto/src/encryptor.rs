//! The producer side: one random AES-256 data key, wrapped with each key name's public key (RSA
//! or EC),
//! regenerated (and wrapped again) every [`DATA_KEY_ROTATION`]; a random 12-byte IV per entry.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1;
use bytes::Bytes;
use pulsar_core::proto::pb;
use pulsar_core::{CryptoError, MessageEncryptor};
use zeroize::Zeroizing;

use crate::ecies;
use crate::keys::{public_key, CryptoKeyReader, WrapKey};
use crate::{DATA_KEY_LEN, IV_LEN, TAG_LEN};

/// How often a producer draws a new data key (the Java client's 4 hours).
pub const DATA_KEY_ROTATION: Duration = Duration::from_secs(4 * 3600);

/// Where data keys and IVs come from.
pub trait RandomSource: Send + Sync + fmt::Debug {
    /// Fills `dest` with cryptographically secure random bytes.
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError>;
}

/// The operating system's random source (through AWS-LC).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError> {
        aws_lc_rs::rand::fill(dest).map_err(|_| CryptoError::Cipher("random source failed".into()))
    }
}

/// The current data key and its wrapped copies.
struct DataKey {
    key: LessSafeKey,
    created: Instant,
    /// `encryption_keys` as every entry carries them (by key name order).
    wrapped: Vec<pb::EncryptionKeys>,
}

/// Encrypts a producer's payloads as the Java client does; give it to
/// [`ProducerOptions::encryption`](pulsar_core::ProducerOptions::encryption) in an `Arc`.
pub struct Encryptor {
    names: BTreeSet<String>,
    reader: Arc<dyn CryptoKeyReader>,
    random: Arc<dyn RandomSource>,
    rotation: Duration,
    current: Mutex<Option<DataKey>>,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("names", &self.names)
            .field("reader", &self.reader)
            .field("rotation", &self.rotation)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Encrypts for the key names `names` (each one's public key from `reader`), with the OS
    /// random source and Java's 4-hour data key rotation.
    pub fn new<I, S>(names: I, reader: Arc<dyn CryptoKeyReader>) -> Encryptor
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Encryptor {
            names: names.into_iter().map(Into::into).collect(),
            reader,
            random: Arc::new(OsRandom),
            rotation: DATA_KEY_ROTATION,
            current: Mutex::new(None),
        }
    }

    /// Draws data keys and IVs from `random` instead of the OS (builder style).
    pub fn with_random(mut self, random: Arc<dyn RandomSource>) -> Encryptor {
        self.random = random;
        self
    }

    /// Rotates the data key this often instead of every 4 hours (builder style).
    pub fn with_rotation(mut self, rotation: Duration) -> Encryptor {
        self.rotation = rotation;
        self
    }

    /// Draws a new data key and wraps it for every key name.
    fn new_data_key(&self, now: Instant) -> Result<DataKey, CryptoError> {
        if self.names.is_empty() {
            return Err(CryptoError::NoKeyNames);
        }
        let mut raw = Zeroizing::new([0u8; DATA_KEY_LEN]);
        self.random.fill(&mut raw[..])?;
        let mut wrapped = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let info =
                self.reader
                    .public_key(name, &[])
                    .map_err(|e| CryptoError::KeyUnavailable {
                        name: name.clone(),
                        reason: e.0,
                    })?;
            let invalid = |reason: String| CryptoError::InvalidKey {
                name: name.clone(),
                reason,
            };
            let out = match public_key(&info).map_err(invalid)? {
                WrapKey::Rsa(public) => {
                    let mut out = vec![0u8; public.ciphertext_size()];
                    let n = public
                        .encrypt(&OAEP_SHA1_MGF1SHA1, &raw[..], &mut out, None)
                        .map_err(|_| invalid("RSA-OAEP wrapping failed".into()))?
                        .len();
                    out.truncate(n);
                    out
                }
                WrapKey::Ec(public) => ecies::wrap(&public, &raw)
                    .map_err(|()| invalid("ECIES wrapping failed".into()))?,
            };
            wrapped.push(pb::EncryptionKeys {
                key: name.clone(),
                value: Bytes::from(out),
                metadata: info
                    .metadata
                    .iter()
                    .map(|(key, value)| pb::KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            });
        }
        let key = UnboundKey::new(&AES_256_GCM, &raw[..])
            .map_err(|_| CryptoError::Cipher("AES-256-GCM key rejected".into()))?;
        Ok(DataKey {
            key: LessSafeKey::new(key),
            created: now,
            wrapped,
        })
    }
}

impl MessageEncryptor for Encryptor {
    fn encrypt(
        &self,
        now: Instant,
        metadata: &mut pb::MessageMetadata,
        payload: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut current = self
            .current
            .lock()
            .map_err(|_| CryptoError::Cipher("encryptor state poisoned".into()))?;
        let stale = current
            .as_ref()
            .is_none_or(|k| now.saturating_duration_since(k.created) >= self.rotation);
        if stale {
            *current = Some(self.new_data_key(now)?);
        }
        let Some(data_key) = current.as_ref() else {
            return Err(CryptoError::Cipher("no data key".into()));
        };
        let mut iv = [0u8; IV_LEN];
        self.random.fill(&mut iv)?;
        let mut out = Vec::with_capacity(payload.len() + TAG_LEN);
        out.extend_from_slice(payload);
        data_key
            .key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut out)
            .map_err(|_| CryptoError::Cipher("AES-GCM sealing failed".into()))?;
        metadata.encryption_keys.clone_from(&data_key.wrapped);
        metadata.encryption_param = Some(Bytes::copy_from_slice(&iv));
        Ok(out)
    }
}
