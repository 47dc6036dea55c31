//! The producer side: one random AES-256 data key, wrapped with each key name's public key (RSA
//! or EC), regenerated (and wrapped again) every [`DATA_KEY_ROTATION`]; a 12-byte IV per entry
//! that is unique under its data key.
//!
//! The IVs follow NIST SP 800-38D's deterministic construction (8.2.1): each data key draws a
//! random 12-byte starting IV, and every entry under that key takes the next one, the last 8
//! bytes counted up as a big-endian integer (wrapping; a data key is rotated before its 2^64th
//! entry). Within a data key no IV repeats, which is what GCM needs; a consumer (this one, Java's
//! or C++'s) reads any 12 bytes from `encryption_param`. The IVs are cut from a shared block of
//! 256 of them, so that an entry's `encryption_param` costs no allocation of its own, and
//! the wrapped keys are built once per data key.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1;
use bytes::{BufMut, Bytes, BytesMut};
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

/// How many IVs are prepared at a time (one allocation of `IV_BLOCK * 12` bytes).
const IV_BLOCK: usize = 256;

/// The current data key, its wrapped copies and its IVs.
struct DataKey {
    key: LessSafeKey,
    created: Instant,
    /// `encryption_keys` as every entry carries them (by key name order).
    wrapped: Vec<pb::EncryptionKeys>,
    /// The first IV under this key (random).
    iv_base: [u8; IV_LEN],
    /// Entries sealed under this key so far (the counter of the next IV).
    sealed: u64,
    /// The IVs of entries `block_start..block_start + IV_BLOCK`, back to back.
    block: Bytes,
    block_start: u64,
}

impl DataKey {
    /// The IV of entry `n` under this key.
    fn iv(&self, n: u64) -> [u8; IV_LEN] {
        let mut iv = self.iv_base;
        let mut low = [0u8; 8];
        low.copy_from_slice(&iv[IV_LEN - 8..]);
        let counted = u64::from_be_bytes(low).wrapping_add(n);
        iv[IV_LEN - 8..].copy_from_slice(&counted.to_be_bytes());
        iv
    }

    /// The next entry's IV, as an array and as `encryption_param`; `None` once the counter is
    /// spent (the key must be rotated).
    fn next_iv(&mut self) -> Option<([u8; IV_LEN], Bytes)> {
        let n = self.sealed;
        if n == u64::MAX {
            return None;
        }
        let mut at = usize::try_from(n.wrapping_sub(self.block_start)).unwrap_or(usize::MAX);
        if at >= IV_BLOCK || self.block.is_empty() {
            let mut block = BytesMut::with_capacity(IV_BLOCK * IV_LEN);
            for i in 0..IV_BLOCK as u64 {
                block.put_slice(&self.iv(n.wrapping_add(i)));
            }
            self.block = block.freeze();
            self.block_start = n;
            at = 0;
        }
        let param = self.block.slice(at * IV_LEN..(at + 1) * IV_LEN);
        self.sealed = n + 1;
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&param);
        Some((iv, param))
    }
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

    /// Draws data keys and the first IV under each from `random` instead of the OS (builder
    /// style).
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
        let mut iv_base = [0u8; IV_LEN];
        self.random.fill(&mut iv_base)?;
        Ok(DataKey {
            key: LessSafeKey::new(key),
            created: now,
            wrapped,
            iv_base,
            sealed: 0,
            block: Bytes::new(),
            block_start: 0,
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
        let next = match current.as_mut().map(DataKey::next_iv) {
            Some(Some(next)) => next,
            // 2^64 entries under one key: rotate now
            _ => {
                let mut fresh = self.new_data_key(now)?;
                let next = fresh.next_iv();
                *current = Some(fresh);
                next.ok_or_else(|| CryptoError::Cipher("no IV".into()))?
            }
        };
        let Some(data_key) = current.as_ref() else {
            return Err(CryptoError::Cipher("no data key".into()));
        };
        let (iv, param) = next;
        // sealed in place, in a buffer that fits the tag: no reallocation
        let mut out = Vec::with_capacity(payload.len() + TAG_LEN);
        out.extend_from_slice(payload);
        data_key
            .key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut out)
            .map_err(|_| CryptoError::Cipher("AES-GCM sealing failed".into()))?;
        metadata.encryption_keys.clone_from(&data_key.wrapped);
        metadata.encryption_param = Some(param);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn data_key(iv_base: [u8; IV_LEN]) -> DataKey {
        DataKey {
            key: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &[7u8; DATA_KEY_LEN]).expect("key"),
            ),
            created: Instant::now(),
            wrapped: Vec::new(),
            iv_base,
            sealed: 0,
            block: Bytes::new(),
            block_start: 0,
        }
    }

    #[test]
    fn ivs_count_up_from_the_random_base_across_blocks() {
        let mut base = [0u8; IV_LEN];
        base[..4].copy_from_slice(&[1, 2, 3, 4]);
        // the low 8 bytes near their top: the counter wraps within them
        base[4..].copy_from_slice(&(u64::MAX - 2).to_be_bytes());
        let mut k = data_key(base);
        let mut seen = HashSet::new();
        for n in 0..(3 * IV_BLOCK as u64 + 5) {
            let (iv, param) = k.next_iv().expect("an IV");
            assert_eq!(&iv[..], &param[..]);
            assert_eq!(&iv[..4], &[1, 2, 3, 4], "the fixed field stays");
            let low = u64::from_be_bytes(iv[4..].try_into().expect("8 bytes"));
            assert_eq!(low, (u64::MAX - 2).wrapping_add(n));
            assert!(seen.insert(iv), "IV {n} repeated");
        }
    }

    #[test]
    fn a_spent_counter_asks_for_a_new_key() {
        let mut k = data_key([9; IV_LEN]);
        k.sealed = u64::MAX - 1;
        assert!(k.next_iv().is_some());
        assert!(k.next_iv().is_none(), "2^64 entries: rotate");
    }
}
