//! Builder setters for end-to-end encryption (`pulsar-crypto`, re-exported as [`crate::crypto`]):
//! the producer's key names, key reader and failure action, the consumer's and reader's key
//! reader and failure action. Kept apart from `setters.rs`; their text is in `setter_macros.rs`,
//! shared with `pulsar-blocking`.

use crate::consumer::{ConsumerBuilder, ReaderBuilder};
use crate::producer::ProducerBuilder;

impl ProducerBuilder {
    crate::__producer_crypto_setters!();
}

impl ConsumerBuilder {
    crate::__decrypt_setters!();
}

impl ReaderBuilder {
    crate::__decrypt_setters!();
}
