//! The consumer side: unwraps a message's data key with a private key (RSA or EC), keeps the unwrapped keys
//! (so a batch, and every later entry under the same data key, costs no unwrap), and opens the
//! AES-256-GCM payload.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1;
use bytes::Bytes;
use pulsar_core::proto::pb;
use pulsar_core::{CryptoError, MessageDecryptor};
use zeroize::Zeroizing;

use crate::ecies;
use crate::keys::{private_key, CryptoKeyReader, UnwrapKey};
use crate::{DATA_KEY_LEN, IV_LEN, TAG_LEN};

/// How long an unwrapped data key stays cached after its last use (the Java client's 4 hours).
pub const DATA_KEY_CACHE_EXPIRY: Duration = Duration::from_secs(4 * 3600);

/// At most this many unwrapped data keys are kept (the least recently used goes first).
const CACHE_CAPACITY: usize = 1024;

struct Cached {
    key: LessSafeKey,
    used: Instant,
}

/// Decrypts a consumer's messages as the Java client does; give it to
/// [`ConsumerCrypto::decryptor`](pulsar_core::ConsumerCrypto::decryptor) in an `Arc`.
pub struct Decryptor {
    reader: Arc<dyn CryptoKeyReader>,
    expiry: Duration,
    /// Unwrapped data keys by their wrapped bytes.
    cache: Mutex<BTreeMap<Bytes, Cached>>,
}

impl fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("reader", &self.reader)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// Decrypts with the private keys of `reader`.
    pub fn new(reader: Arc<dyn CryptoKeyReader>) -> Decryptor {
        Decryptor {
            reader,
            expiry: DATA_KEY_CACHE_EXPIRY,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// How many unwrapped data keys are cached.
    pub fn cached_keys(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.len())
    }

    /// Unwraps `wrapped` with the private key named in `k`.
    fn unwrap_key(&self, k: &pb::EncryptionKeys) -> Result<LessSafeKey, CryptoError> {
        let metadata: Vec<(String, String)> = k
            .metadata
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        let info = self.reader.private_key(&k.key, &metadata).map_err(|e| {
            CryptoError::KeyUnavailable {
                name: k.key.clone(),
                reason: e.0,
            }
        })?;
        let private = private_key(&info).map_err(|reason| CryptoError::InvalidKey {
            name: k.key.clone(),
            reason,
        })?;
        let no_key = || CryptoError::NoDataKey {
            keys: k.key.clone(),
        };
        let raw = match private {
            UnwrapKey::Rsa(private) => {
                let mut out = Zeroizing::new(vec![0u8; private.min_output_size()]);
                let n = private
                    .decrypt(&OAEP_SHA1_MGF1SHA1, &k.value, &mut out, None)
                    .map_err(|_| no_key())?
                    .len();
                out.truncate(n);
                out
            }
            UnwrapKey::Ec(private) => ecies::unwrap(&private, &k.value).ok_or_else(no_key)?,
        };
        if raw.len() != DATA_KEY_LEN {
            return Err(no_key());
        }
        let key = UnboundKey::new(&AES_256_GCM, &raw)
            .map_err(|_| CryptoError::Cipher("AES-256-GCM key rejected".into()))?;
        Ok(LessSafeKey::new(key))
    }

    /// Drops what expired, and the least recently used keys beyond the capacity.
    fn prune(&self, cache: &mut BTreeMap<Bytes, Cached>, now: Instant) {
        cache.retain(|_, c| now.saturating_duration_since(c.used) < self.expiry);
        while cache.len() >= CACHE_CAPACITY {
            let oldest = cache
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => cache.remove(&k),
                None => break,
            };
        }
    }
}

/// Opens `payload` (ciphertext and tag, at least [`TAG_LEN`] bytes) with `key`, straight into a
/// buffer of the plaintext's size (no copy of the ciphertext first; the core turns it into
/// `Bytes` without reallocating).
fn open(key: &LessSafeKey, iv: [u8; IV_LEN], payload: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let Some(split) = payload.len().checked_sub(TAG_LEN) else {
        return Err(CryptoError::Truncated(payload.len()));
    };
    let (ciphertext, tag) = payload.split_at(split);
    let mut out = vec![0u8; split];
    key.open_separate_gather(
        Nonce::assume_unique_for_key(iv),
        Aad::empty(),
        ciphertext,
        tag,
        &mut out,
    )
    .map_err(|_| CryptoError::Authentication)?;
    Ok(out)
}

impl MessageDecryptor for Decryptor {
    fn decrypt(
        &self,
        now: Instant,
        metadata: &pb::MessageMetadata,
        payload: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let param = metadata.encryption_param.as_deref().unwrap_or_default();
        let iv: [u8; IV_LEN] = param
            .try_into()
            .map_err(|_| CryptoError::BadParam(param.len()))?;
        if payload.len() < TAG_LEN {
            return Err(CryptoError::Truncated(payload.len()));
        }
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| CryptoError::Cipher("decryptor state poisoned".into()))?;
        // a data key unwrapped before: no RSA at all
        for k in &metadata.encryption_keys {
            if let Some(c) = cache.get_mut(&k.value) {
                c.used = now;
                return open(&c.key, iv, payload);
            }
        }
        let mut first_error = None;
        for k in &metadata.encryption_keys {
            match self.unwrap_key(k) {
                Ok(key) => {
                    let plain = open(&key, iv, payload);
                    self.prune(&mut cache, now);
                    cache.insert(k.value.clone(), Cached { key, used: now });
                    return plain;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let keys: Vec<&str> = metadata
            .encryption_keys
            .iter()
            .map(|k| k.key.as_str())
            .collect();
        Err(match first_error {
            Some(e @ (CryptoError::KeyUnavailable { .. } | CryptoError::InvalidKey { .. })) => e,
            _ => CryptoError::NoDataKey {
                keys: keys.join(","),
            },
        })
    }
}
