//! Builder setters for the options that have no setter of their own in `producer.rs` and
//! `consumer.rs`, so that no option needs [`configure`](crate::ConsumerBuilder::configure) on
//! the core's structs. Each one sets the field of the same name of the core's options. The
//! text is `pulsar-async`'s (its `setter_macros.rs`), so the two APIs cannot drift apart.
//! Schemas: `.schema(S)` turns a builder into a typed one.

use crate::consumer::{ConsumerBuilder, ReaderBuilder};
use crate::producer::ProducerBuilder;

impl ProducerBuilder {
    pulsar_async::__producer_option_setters!();
}

impl ConsumerBuilder {
    pulsar_async::__consumer_option_setters!();
}

impl ReaderBuilder {
    pulsar_async::__reader_option_setters!();
}
