//! End-to-end encryption hooks: the core calls them, it does not hold keys or ciphers.
//!
//! A producer with a [`MessageEncryptor`] encrypts every entry's payload after compression (a
//! batch as one payload, a chunked message before it is split) and lets the encryptor write
//! `encryption_keys` and `encryption_param` into the entry's metadata. A consumer decrypts an
//! entry whose metadata has `encryption_keys` with its [`MessageDecryptor`] after reassembling
//! chunks and before decompressing; when it cannot, its [`CryptoFailureAction`] says what
//! happens (the Java client's `ConsumerCryptoFailureAction`).
//!
//! The core stays pure: the hooks are the application's (or the `pulsar-crypto` crate's) code,
//! which draws its own random data keys and IVs. The core only hands them `now`, so that a data
//! key's rotation follows the core's clock.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use pulsar_proto::pb;

/// Encrypts payloads for a producer: implemented by `pulsar-crypto`'s `Encryptor` (or the
/// application's own code).
pub trait MessageEncryptor: Send + Sync + fmt::Debug {
    /// Encrypts one entry's `payload` (compressed already) and records in `metadata` what a
    /// consumer needs to decrypt it (`encryption_keys`, `encryption_param`, ...).
    fn encrypt(
        &self,
        now: Instant,
        metadata: &mut pb::MessageMetadata,
        payload: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;
}

/// Decrypts payloads for a consumer: implemented by `pulsar-crypto`'s `Decryptor` (or the
/// application's own code).
pub trait MessageDecryptor: Send + Sync + fmt::Debug {
    /// Decrypts one entry's payload (still compressed after decryption) with what its
    /// `metadata` carries.
    fn decrypt(
        &self,
        now: Instant,
        metadata: &pb::MessageMetadata,
        payload: &[u8],
    ) -> Result<Vec<u8>, CryptoError>;
}

/// Why a payload could not be encrypted or decrypted. No variant carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The message is encrypted and the consumer has no decryptor (no private key reader).
    #[error("the message is encrypted and the consumer has no key reader")]
    NoDecryptor,
    /// The key reader could not supply the named key.
    #[error("key {name}: {reason}")]
    KeyUnavailable {
        /// The key name.
        name: String,
        /// Why (the key reader's words).
        reason: String,
    },
    /// A key was read but is not a usable public or private key.
    #[error("key {name} is invalid: {reason}")]
    InvalidKey {
        /// The key name.
        name: String,
        /// Why.
        reason: String,
    },
    /// None of the message's wrapped data keys could be unwrapped with the keys available.
    #[error("no data key of the message could be unwrapped (keys: {keys})")]
    NoDataKey {
        /// The key names the message carried, comma-separated.
        keys: String,
    },
    /// `encryption_param` (the IV) is missing or not 12 bytes long.
    #[error("encryption_param must be a 12-byte IV, got {0} bytes")]
    BadParam(usize),
    /// The payload is shorter than the authentication tag.
    #[error("encrypted payload of {0} bytes is shorter than its tag")]
    Truncated(usize),
    /// The ciphertext did not authenticate under the data key (corrupted, or a wrong key).
    #[error("the payload does not authenticate under its data key")]
    Authentication,
    /// The producer has no encryption key names.
    #[error("no encryption key names")]
    NoKeyNames,
    /// The cipher or the random source failed.
    #[error("cipher failure: {0}")]
    Cipher(String),
}

/// What a consumer does with a message it cannot decrypt (Java's
/// `ConsumerCryptoFailureAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CryptoFailureAction {
    /// Do not deliver it and do not acknowledge it; report
    /// [`ReceiveError::Crypto`](crate::ReceiveError::Crypto) (the default).
    #[default]
    Fail,
    /// Acknowledge it (with the `DecryptionError` validation error) and drop it; report the error.
    Discard,
    /// Deliver it still encrypted (a batch as one message), with its
    /// [`EncryptionContext`] marked [`undecrypted`](EncryptionContext::undecrypted).
    Consume,
}

/// What a producer does with a message it cannot encrypt (Java's
/// `ProducerCryptoFailureAction`), for instance when its key reader cannot supply a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProducerCryptoFailureAction {
    /// Fail the send with [`SendError::Encryption`](crate::SendError::Encryption) (the default).
    #[default]
    Fail,
    /// Send the message unencrypted (without `encryption_keys` and `encryption_param`).
    Send,
}

/// A consumer's decryption settings: the decryptor (if any) and the failure action.
#[derive(Clone, Default)]
pub struct ConsumerCrypto {
    /// Decrypts encrypted messages; `None`: every encrypted message is a failure.
    pub decryptor: Option<Arc<dyn MessageDecryptor>>,
    /// What to do with a message that cannot be decrypted.
    pub failure_action: CryptoFailureAction,
}

impl fmt::Debug for ConsumerCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerCrypto")
            .field("decryptor", &self.decryptor.as_ref().map(|_| ".."))
            .field("failure_action", &self.failure_action)
            .finish()
    }
}

impl PartialEq for ConsumerCrypto {
    fn eq(&self, other: &Self) -> bool {
        let same = match (&self.decryptor, &other.decryptor) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same && self.failure_action == other.failure_action
    }
}

/// One wrapped data key of an encrypted message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncryptionKey {
    /// The key name.
    pub name: String,
    /// The data key, wrapped with that key's public key.
    pub value: Bytes,
    /// The key's metadata (from the producer's key reader).
    pub metadata: Vec<(String, String)>,
}

/// How a received message was encrypted (Java's `EncryptionContext`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncryptionContext {
    /// The wrapped data keys.
    pub keys: Vec<EncryptionKey>,
    /// The AES-GCM IV (`encryption_param`).
    pub param: Bytes,
    /// `encryption_algo`, when the producer set one.
    pub algorithm: Option<String>,
    /// The compression of the payload under the encryption (protocol number, 0: none).
    pub compression: i32,
    /// The uncompressed size, when compressed.
    pub uncompressed_size: Option<u32>,
    /// The number of messages in the batch, for a batch.
    pub batch_size: Option<i32>,
    /// The payload is still encrypted (delivered under [`CryptoFailureAction::Consume`]).
    pub undecrypted: bool,
}

impl EncryptionContext {
    /// The context of an entry's metadata; `None` when it is not encrypted.
    pub fn of(metadata: &pb::MessageMetadata, undecrypted: bool) -> Option<EncryptionContext> {
        if metadata.encryption_keys.is_empty() {
            return None;
        }
        Some(EncryptionContext {
            keys: metadata
                .encryption_keys
                .iter()
                .map(|k| EncryptionKey {
                    name: k.key.clone(),
                    value: k.value.clone(),
                    metadata: k
                        .metadata
                        .iter()
                        .map(|kv| (kv.key.clone(), kv.value.clone()))
                        .collect(),
                })
                .collect(),
            param: metadata.encryption_param.clone().unwrap_or_default(),
            algorithm: metadata.encryption_algo.clone(),
            compression: metadata.compression.unwrap_or(0),
            uncompressed_size: metadata.uncompressed_size,
            batch_size: metadata.num_messages_in_batch,
            undecrypted,
        })
    }
}
