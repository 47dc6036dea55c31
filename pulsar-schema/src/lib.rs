//! pulsar-schema: Apache Pulsar schemas and their codecs, encoded exactly as the Java client
//! encodes them and declared with the same `SchemaInfo`.
//!
//! A [`Schema`] turns application values into message payloads and back, and says what to
//! declare to the broker ([`Schema::info`]). The kinds:
//!
//! - primitives ([`primitive`]): bytes, UTF-8 strings, booleans, `i8`–`i64` and `f32`/`f64`
//!   big-endian, and the Java date and time types ([`Date`], [`Time`], [`Timestamp`],
//!   [`Instant`], [`LocalDate`], [`LocalTime`], [`LocalDateTime`]);
//! - JSON ([`JsonSchema`], feature `json`, on by default): serde values with the Avro-style
//!   record definition Java's `JSONSchema` declares;
//! - Avro (`AvroSchema`, feature `avro`): Avro binary through `apache-avro`, typed with serde,
//!   reading messages written under older versions of the schema (schema resolution);
//! - Protobuf (`ProtobufSchema`, `ProtobufNativeSchema`, feature `protobuf`): prost messages;
//! - [`KeyValueSchema`]: a key and a value with their own schemas, INLINE or SEPARATED;
//! - [`AutoConsume`] (feature `json`): whatever schema each message was written with, decoded
//!   into a [`GenericValue`] (printable as JSON).
//!
//! The core (`pulsar-core`) only carries [`SchemaInfo`]s and schema versions; this crate does the
//! encoding, and `pulsar-async` (re-exported by `pulsar-tokio`, `pulsar-smol` and
//! `pulsar-blocking`) builds typed producers and consumers on it.
//!
//! ```
//! use pulsar_schema::{primitive, Schema};
//!
//! let schema = primitive::<i32>();
//! let payload = schema.encode(&258).unwrap();
//! assert_eq!(&payload[..], &[0, 0, 1, 2]);
//! assert_eq!(schema.decode(&payload).unwrap(), 258);
//! assert_eq!(schema.info().kind, pulsar_schema::SchemaType::Int32);
//! ```
#![deny(missing_docs)]
#![warn(clippy::too_many_lines)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::sync::Arc;

use bytes::Bytes;

mod arena;
#[cfg(feature = "json")]
mod auto;
#[cfg(feature = "avro")]
mod avro;
#[cfg(feature = "json")]
mod json;
mod keyvalue;
mod primitive;
#[cfg(feature = "protobuf")]
mod protobuf;

#[cfg(feature = "json")]
pub use auto::{generic_decoder, validate, AutoConsume, GenericValue};
#[cfg(feature = "avro")]
pub use avro::AvroSchema;
#[cfg(feature = "json")]
pub use json::JsonSchema;
pub use keyvalue::{
    encode_inline, key_value_info, split_info, KeyValue, KeyValueEncoding, KeyValueSchema,
};
pub use primitive::{
    primitive, Date, Instant, LocalDate, LocalDateTime, LocalTime, Primitive, PrimitiveValue, Time,
    Timestamp,
};
#[cfg(feature = "protobuf")]
pub use protobuf::{ProtobufNativeSchema, ProtobufSchema};
pub use pulsar_core::schema::{SchemaInfo, SchemaType, SchemaVersion, VersionedSchema};

/// The Avro crate this one is built on (for `apache_avro::AvroSchema` impls and derives of the
/// same version, used by `AvroSchema::of`).
#[cfg(feature = "avro")]
pub use apache_avro;
/// The Protobuf crate this one is built on (`prost::Message` of the same version).
#[cfg(feature = "protobuf")]
pub use prost;

/// A schema: how values become payloads and back, and what is declared to the broker.
///
/// Implementations encode exactly as the Java client's schema of the same kind, so that either
/// client reads the other's messages.
pub trait Schema: Send + Sync + 'static {
    /// The application's values.
    type Value;

    /// What producers and consumers declare (`PRODUCER`, `SUBSCRIBE`).
    fn info(&self) -> &SchemaInfo;

    /// The payload of `value`.
    fn encode(&self, value: &Self::Value) -> Result<Bytes, SchemaError>;

    /// The value of a payload written with this schema (or a message without schema version).
    fn decode(&self, payload: &[u8]) -> Result<Self::Value, SchemaError>;

    /// The payload and, for a key-value schema with [`KeyValueEncoding::Separated`], the key
    /// bytes to send as the message key (base64, as Java does). Others: the payload alone.
    fn encode_message(&self, value: &Self::Value) -> Result<(Bytes, Option<Bytes>), SchemaError> {
        Ok((self.encode(value)?, None))
    }

    /// The value of a message: its payload and its key bytes (the base64 message key decoded;
    /// used by [`KeyValueEncoding::Separated`]). Others read the payload alone.
    fn decode_message(
        &self,
        payload: &[u8],
        key: Option<&[u8]>,
    ) -> Result<Self::Value, SchemaError> {
        let _ = key;
        self.decode(payload)
    }

    /// Whether a message written under another version of the topic's schema needs that
    /// version's definition to be read ([`writer_decoder`](Self::writer_decoder)): true for Avro
    /// (schema resolution) and AUTO_CONSUME, false for the rest, which read any version alike.
    fn uses_writer_schema(&self) -> bool {
        false
    }

    /// A decoder for messages written with `writer` (the schema of their version, fetched from the
    /// registry). `None`: [`decode_message`](Self::decode_message) reads them (the writer's
    /// schema is this one). Consumers cache the answer per schema version.
    fn writer_decoder(
        &self,
        writer: &SchemaInfo,
    ) -> Result<Option<Arc<dyn Decoder<Self::Value>>>, SchemaError> {
        let _ = writer;
        Ok(None)
    }
}

/// Reads messages written under one schema version (see [`Schema::writer_decoder`]).
pub trait Decoder<T>: Send + Sync {
    /// The value of a message: its payload and its key bytes (for separated key-values).
    fn decode_message(&self, payload: &[u8], key: Option<&[u8]>) -> Result<T, SchemaError>;
}

/// Why a value could not be encoded or a payload decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The payload has the wrong size for a fixed-size kind (`Int32` takes 4 bytes, ...).
    #[error("{kind} payload of {actual} bytes, expected {expected}")]
    Size {
        /// The kind.
        kind: SchemaType,
        /// The size it takes.
        expected: usize,
        /// The payload's size.
        actual: usize,
    },
    /// A string payload is not UTF-8.
    #[error("string payload is not UTF-8: {0}")]
    Utf8(String),
    /// The JSON codec failed (serde_json's message).
    #[error("JSON: {0}")]
    Json(String),
    /// The Avro codec failed (apache-avro's message).
    #[error("Avro: {0}")]
    Avro(String),
    /// The Protobuf codec failed (prost's message).
    #[error("Protobuf: {0}")]
    Protobuf(String),
    /// A key-value payload or schema is malformed (lengths beyond the data, a missing key).
    #[error("key-value: {0}")]
    KeyValue(String),
    /// The schema definition itself cannot be used (not parsable, a kind this client cannot
    /// decode).
    #[error("schema definition: {0}")]
    Definition(String),
    /// The message was written with a schema version the registry does not have.
    #[error("schema version {0:?} not found in the registry")]
    UnknownVersion(Bytes),
    /// The schema of the message's version could not be fetched (the client's reason).
    #[error("fetching the schema of version {version:?}: {reason}")]
    Fetch {
        /// The version.
        version: Bytes,
        /// Why.
        reason: String,
    },
}

/// A shared schema is a schema (producers and consumers keep theirs behind an `Arc`).
impl<S: Schema + ?Sized> Schema for Arc<S> {
    type Value = S::Value;

    fn info(&self) -> &SchemaInfo {
        (**self).info()
    }

    fn encode(&self, value: &Self::Value) -> Result<Bytes, SchemaError> {
        (**self).encode(value)
    }

    fn decode(&self, payload: &[u8]) -> Result<Self::Value, SchemaError> {
        (**self).decode(payload)
    }

    fn encode_message(&self, value: &Self::Value) -> Result<(Bytes, Option<Bytes>), SchemaError> {
        (**self).encode_message(value)
    }

    fn decode_message(
        &self,
        payload: &[u8],
        key: Option<&[u8]>,
    ) -> Result<Self::Value, SchemaError> {
        (**self).decode_message(payload, key)
    }

    fn uses_writer_schema(&self) -> bool {
        (**self).uses_writer_schema()
    }

    fn writer_decoder(
        &self,
        writer: &SchemaInfo,
    ) -> Result<Option<Arc<dyn Decoder<Self::Value>>>, SchemaError> {
        (**self).writer_decoder(writer)
    }
}
