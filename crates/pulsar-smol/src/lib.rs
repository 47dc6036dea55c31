//! pulsar-smol: part of a sans-IO Apache Pulsar client.
#![deny(missing_docs)]
