//! End-to-end message encryption for the Pulsar client, compatible with the Java and C++
//! clients (`MessageCryptoBc`, `MessageCrypto.cc`).
//!
//! - Every entry's payload (a message, or a whole batch, after compression; each chunk of a
//!   chunked message on its own, as Java does) is encrypted with AES-256-GCM under a random data
//!   key: a 12-byte IV in `encryption_param` (random for a data key's first entry, then counted
//!   up, so that no IV repeats under a key), the 16-byte tag appended to the ciphertext.
//! - The data key is wrapped for each key name with its RSA public key, RSA-OAEP with SHA-1 and
//!   MGF1-SHA-1 (Java's `RSA/NONE/OAEPWithSHA1AndMGF1Padding`, C++'s `RSA_PKCS1_OAEP_PADDING`),
//!   and written in `encryption_keys` with the key's metadata. For an EC key (P-256, P-384,
//!   P-521) it is wrapped as Java's BouncyCastle `ECIES` cipher wraps it (ECDH with an ephemeral
//!   key, KDF2-SHA-1, XOR, HMAC-SHA-1). A producer draws a new data key every 4 hours
//!   ([`DATA_KEY_ROTATION`]).
//! - A consumer unwraps a data key once and keeps it ([`DATA_KEY_CACHE_EXPIRY`] after its last
//!   use), so a batch, and every entry under the same data key, costs no RSA operation.
//!
//! Keys come from a [`CryptoKeyReader`]: [`PemKeyReader`] reads PEM files (`PUBLIC KEY` or
//! `RSA PUBLIC KEY`; `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`), or implement the
//! trait. Key bytes are zeroized on drop and never printed; a key that is neither RSA nor EC on
//! a supported curve is an [`InvalidKey`](pulsar_core::CryptoError::InvalidKey) error.
//!
//! The primitives are AWS-LC's (`aws-lc-rs`, the provider rustls uses here too). Data keys and
//! their first IVs come from a [`RandomSource`] ([`OsRandom`] by default; RSA-OAEP padding and ECIES
//! ephemeral keys from AWS-LC's own generator); `pulsar-core` itself draws none.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pulsar_crypto::{Decryptor, Encryptor, PemKeyReader};
//!
//! let reader = Arc::new(PemKeyReader::files(
//!     Some("public.pem".into()),
//!     Some("private.pem".into()),
//! ));
//! let mut producer = pulsar_core::ProducerOptions::default();
//! producer.encryption = Some(Arc::new(Encryptor::new(["my-key"], reader.clone())));
//! let mut consumer = pulsar_core::ConsumerOptions::new("sub");
//! consumer.crypto.decryptor = Some(Arc::new(Decryptor::new(reader)));
//! ```

mod decryptor;
mod ecies;
mod encryptor;
mod keys;

pub use decryptor::{Decryptor, DATA_KEY_CACHE_EXPIRY};
pub use encryptor::{Encryptor, OsRandom, RandomSource, DATA_KEY_ROTATION};
pub use keys::{CryptoKeyReader, EncryptionKeyInfo, KeyReadError, PemKeyReader};
pub use pulsar_core::{CryptoError, CryptoFailureAction, MessageDecryptor, MessageEncryptor};

/// AES-256 data key length.
const DATA_KEY_LEN: usize = 32;
/// AES-GCM IV length (`encryption_param`).
const IV_LEN: usize = 12;
/// AES-GCM tag length, appended to the ciphertext.
const TAG_LEN: usize = 16;
