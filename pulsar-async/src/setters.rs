//! Builder setters for the options that have no setter of their own in `producer.rs` and
//! `consumer.rs`, so that no option needs [`configure`](crate::ConsumerBuilder::configure) on
//! the core's structs. Each one sets the field of the same name (see the core's
//! [`ConsumerOptions`], [`ProducerOptions`](pulsar_core::ProducerOptions) and [`ReaderOptions`]
//! for the details). `pulsar-blocking` has the same setters: their text is in
//! `setter_macros.rs`. Schemas: `.schema(S)` turns a builder into a typed one.

use pulsar_core::{ConsumerOptions, ReaderOptions};

use crate::consumer::{ConsumerBuilder, ReaderBuilder};
use crate::producer::ProducerBuilder;

impl ProducerBuilder {
    crate::__producer_option_setters!();
}

impl ConsumerBuilder {
    crate::__consumer_option_setters!();

    /// The whole core options, for reading (the subscription name included).
    pub fn core_options(&self) -> &ConsumerOptions {
        self.options_ref()
    }
}

impl ReaderBuilder {
    crate::__reader_option_setters!();

    /// The whole core options, for reading.
    pub fn core_options(&self) -> &ReaderOptions {
        self.options_ref()
    }
}
