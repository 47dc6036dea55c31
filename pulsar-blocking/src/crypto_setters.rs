//! Builder setters for end-to-end encryption (`pulsar-crypto`, re-exported as [`crate::crypto`]):
//! the producer's key names, key reader and failure action, the consumer's and reader's key
//! reader and failure action. Kept apart from `setters.rs`; the text is `pulsar-async`'s (its
//! `setter_macros.rs`), so the two APIs cannot drift apart.

use crate::consumer::{ConsumerBuilder, ReaderBuilder};
use crate::producer::ProducerBuilder;

impl ProducerBuilder {
    pulsar_async::__producer_crypto_setters!();
}

impl ConsumerBuilder {
    pulsar_async::__decrypt_setters!();
}

impl ReaderBuilder {
    pulsar_async::__decrypt_setters!();
}
