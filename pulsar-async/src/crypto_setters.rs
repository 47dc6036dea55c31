//! Builder setters for end-to-end encryption (`pulsar-crypto`, re-exported as [`crate::crypto`]):
//! the producer's key names, key reader and failure action, the consumer's and reader's key
//! reader and failure action. Kept apart from `setters.rs`.

use std::sync::Arc;

use pulsar_core::{
    CryptoFailureAction, MessageDecryptor, MessageEncryptor, ProducerCryptoFailureAction,
};
use pulsar_crypto::{CryptoKeyReader, Decryptor, Encryptor};

use crate::consumer::{ConsumerBuilder, ReaderBuilder};
use crate::producer::ProducerBuilder;

impl ProducerBuilder {
    /// End-to-end encryption: encrypt every message for the key names `names`, each one's
    /// public key from `reader` (Java's `addEncryptionKey` and `cryptoKeyReader`), with
    /// [`Encryptor`]'s defaults (OS random source, 4-hour data key rotation).
    pub fn encryption_keys<I, S>(self, names: I, reader: Arc<dyn CryptoKeyReader>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let encryptor = Arc::new(Encryptor::new(names, reader));
        self.configure(|o| o.encryption = Some(encryptor))
    }

    /// End-to-end encryption with an encryptor of the application's (or an [`Encryptor`] with
    /// its own rotation or random source).
    pub fn encryptor(self, encryptor: Arc<dyn MessageEncryptor>) -> Self {
        self.configure(|o| o.encryption = Some(encryptor))
    }

    /// What to do with a message that cannot be encrypted: fail the send (the default) or
    /// send it unencrypted (Java's `cryptoFailureAction`).
    pub fn crypto_failure_action(self, action: ProducerCryptoFailureAction) -> Self {
        self.configure(|o| o.crypto_failure_action = action)
    }
}

impl ConsumerBuilder {
    /// End-to-end encryption: decrypt messages with the private keys of `reader` (Java's
    /// `cryptoKeyReader`).
    pub fn crypto_key_reader(self, reader: Arc<dyn CryptoKeyReader>) -> Self {
        let decryptor = Arc::new(Decryptor::new(reader));
        self.configure(|o| o.crypto.decryptor = Some(decryptor))
    }

    /// End-to-end encryption with a decryptor of the application's.
    pub fn decryptor(self, decryptor: Arc<dyn MessageDecryptor>) -> Self {
        self.configure(|o| o.crypto.decryptor = Some(decryptor))
    }

    /// What to do with a message that cannot be decrypted ([`CryptoFailureAction`]; Java's
    /// `cryptoFailureAction`).
    pub fn crypto_failure_action(self, action: CryptoFailureAction) -> Self {
        self.configure(|o| o.crypto.failure_action = action)
    }
}

impl ReaderBuilder {
    /// End-to-end encryption: decrypt messages with the private keys of `reader` (Java's
    /// `cryptoKeyReader`).
    pub fn crypto_key_reader(self, reader: Arc<dyn CryptoKeyReader>) -> Self {
        let decryptor = Arc::new(Decryptor::new(reader));
        self.configure(|o| o.crypto.decryptor = Some(decryptor))
    }

    /// End-to-end encryption with a decryptor of the application's.
    pub fn decryptor(self, decryptor: Arc<dyn MessageDecryptor>) -> Self {
        self.configure(|o| o.crypto.decryptor = Some(decryptor))
    }

    /// What to do with a message that cannot be decrypted ([`CryptoFailureAction`]; Java's
    /// `cryptoFailureAction`).
    pub fn crypto_failure_action(self, action: CryptoFailureAction) -> Self {
        self.configure(|o| o.crypto.failure_action = action)
    }
}
