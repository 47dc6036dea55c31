//! AUTO_CONSUME: messages decoded with the schema of the version they were written with (fetched
//! from the registry by the consumer and cached per version) into [`GenericValue`]s. Also the
//! validation of AUTO_PRODUCE_BYTES payloads ([`validate`]).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value as Json;

use crate::keyvalue::{split, split_info, KeyValueEncoding};
use crate::primitive::PrimitiveValue;
use crate::{
    Date, Decoder, Instant, LocalDate, LocalDateTime, LocalTime, Schema, SchemaError, SchemaInfo,
    SchemaType, Time, Timestamp,
};

/// A value decoded without knowing its type in advance (Java's `GenericRecord` and the primitive
/// values AUTO_CONSUME gives).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GenericValue {
    /// Raw bytes (no schema, BYTES), or a Protobuf message (decoding it needs the generated
    /// type).
    Bytes(Bytes),
    /// Text.
    String(String),
    /// A boolean.
    Bool(bool),
    /// INT8.
    Int8(i8),
    /// INT16.
    Int16(i16),
    /// INT32.
    Int32(i32),
    /// INT64.
    Int64(i64),
    /// FLOAT.
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// DATE, TIME, TIMESTAMP: milliseconds; LOCAL_DATE: days; LOCAL_TIME: nanoseconds (the
    /// kind says which).
    Temporal(SchemaType, i64),
    /// INSTANT.
    Instant(Instant),
    /// LOCAL_DATE_TIME.
    LocalDateTime(LocalDateTime),
    /// A JSON or Avro record, as JSON (Avro bytes and fixed become arrays of numbers).
    Record(SchemaType, Json),
    /// A key-value pair.
    KeyValue(Box<GenericValue>, Box<GenericValue>),
}

impl GenericValue {
    /// The value as JSON: records as objects, key-values as `{"key":..,"value":..}`, bytes as
    /// base64 text, temporal values as numbers.
    pub fn to_json(&self) -> Json {
        use base64::Engine as _;
        match self {
            GenericValue::Bytes(b) => {
                Json::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            GenericValue::String(s) => Json::String(s.clone()),
            GenericValue::Bool(b) => Json::Bool(*b),
            GenericValue::Int8(v) => Json::from(*v),
            GenericValue::Int16(v) => Json::from(*v),
            GenericValue::Int32(v) => Json::from(*v),
            GenericValue::Int64(v) | GenericValue::Temporal(_, v) => Json::from(*v),
            GenericValue::Float(v) => Json::from(*v),
            GenericValue::Double(v) => Json::from(*v),
            GenericValue::Instant(i) => {
                serde_json::json!({"seconds": i.seconds, "nanos": i.nanos})
            }
            GenericValue::LocalDateTime(t) => {
                serde_json::json!({"epochDay": t.epoch_day, "nanoOfDay": t.nano_of_day})
            }
            GenericValue::Record(_, json) => json.clone(),
            GenericValue::KeyValue(k, v) => {
                serde_json::json!({"key": k.to_json(), "value": v.to_json()})
            }
        }
    }
}

/// The AUTO_CONSUME schema: each message is decoded with the schema of its version; a message
/// without a version decodes as bytes.
#[derive(Debug, Clone)]
pub struct AutoConsume {
    info: SchemaInfo,
}

impl AutoConsume {
    /// The AUTO_CONSUME schema.
    pub fn new() -> Self {
        AutoConsume {
            info: SchemaInfo::auto_consume(),
        }
    }
}

impl Default for AutoConsume {
    fn default() -> Self {
        AutoConsume::new()
    }
}

impl Schema for AutoConsume {
    type Value = GenericValue;

    fn info(&self) -> &SchemaInfo {
        &self.info
    }

    fn encode(&self, value: &GenericValue) -> Result<Bytes, SchemaError> {
        match value {
            GenericValue::Bytes(b) => Ok(b.clone()),
            _ => Err(SchemaError::Definition(
                "AUTO_CONSUME encodes bytes only".into(),
            )),
        }
    }

    fn decode(&self, payload: &[u8]) -> Result<GenericValue, SchemaError> {
        Ok(GenericValue::Bytes(Bytes::copy_from_slice(payload)))
    }

    fn uses_writer_schema(&self) -> bool {
        true
    }

    fn writer_decoder(
        &self,
        writer: &SchemaInfo,
    ) -> Result<Option<Arc<dyn Decoder<GenericValue>>>, SchemaError> {
        generic_decoder(writer).map(Some)
    }
}

/// A decoder of messages written with `info` into [`GenericValue`]s.
pub fn generic_decoder(info: &SchemaInfo) -> Result<Arc<dyn Decoder<GenericValue>>, SchemaError> {
    Ok(Arc::new(Generic::of(info)?))
}

/// Checks that `payload` is a valid message for `info` (AUTO_PRODUCE_BYTES: Java checks the bytes
/// against the topic's schema before sending them).
pub fn validate(info: &SchemaInfo, payload: &[u8], key: Option<&[u8]>) -> Result<(), SchemaError> {
    Generic::of(info)?.decode_message(payload, key).map(|_| ())
}

/// How one writer schema's messages are read.
enum Generic {
    Primitive(SchemaType),
    Json,
    #[cfg(feature = "avro")]
    Avro(apache_avro::Schema),
    Opaque,
    KeyValue(KeyValueEncoding, Box<Generic>, Box<Generic>),
}

impl Generic {
    fn of(info: &SchemaInfo) -> Result<Generic, SchemaError> {
        Ok(match info.kind {
            SchemaType::Json => Generic::Json,
            #[cfg(feature = "avro")]
            SchemaType::Avro => Generic::Avro(crate::avro::writer_schema(info)?),
            #[cfg(not(feature = "avro"))]
            SchemaType::Avro => {
                return Err(SchemaError::Definition(
                    "Avro messages need pulsar-schema's avro feature".into(),
                ))
            }
            SchemaType::Protobuf | SchemaType::ProtobufNative => Generic::Opaque,
            SchemaType::KeyValue => {
                let (k, v) = split_info(info)?;
                Generic::KeyValue(
                    KeyValueEncoding::of(info)?,
                    Box::new(Generic::of(&k)?),
                    Box::new(Generic::of(&v)?),
                )
            }
            SchemaType::AutoConsume | SchemaType::AutoPublish => {
                return Err(SchemaError::Definition(format!(
                    "{} is not a stored schema",
                    info.kind
                )))
            }
            kind => Generic::Primitive(kind),
        })
    }

    fn read(&self, payload: &[u8], key: Option<&[u8]>) -> Result<GenericValue, SchemaError> {
        match self {
            Generic::Primitive(kind) => primitive_value(*kind, payload),
            Generic::Json => serde_json::from_slice(payload)
                .map(|j| GenericValue::Record(SchemaType::Json, j))
                .map_err(|e| SchemaError::Json(e.to_string())),
            #[cfg(feature = "avro")]
            Generic::Avro(schema) => {
                let value = crate::avro::read_generic(schema, payload)?;
                let json = Json::try_from(value).map_err(|e| SchemaError::Avro(e.to_string()))?;
                Ok(GenericValue::Record(SchemaType::Avro, json))
            }
            Generic::Opaque => Ok(GenericValue::Bytes(Bytes::copy_from_slice(payload))),
            Generic::KeyValue(encoding, k, v) => {
                let (kb, vb) = split(*encoding, payload, key)?;
                Ok(GenericValue::KeyValue(
                    Box::new(k.read(kb, None)?),
                    Box::new(v.read(vb, None)?),
                ))
            }
        }
    }
}

impl Decoder<GenericValue> for Generic {
    fn decode_message(
        &self,
        payload: &[u8],
        key: Option<&[u8]>,
    ) -> Result<GenericValue, SchemaError> {
        self.read(payload, key)
    }
}

/// A primitive kind's payload as a generic value.
fn primitive_value(kind: SchemaType, p: &[u8]) -> Result<GenericValue, SchemaError> {
    Ok(match kind {
        SchemaType::String => GenericValue::String(String::from_payload(p)?),
        SchemaType::Boolean => GenericValue::Bool(bool::from_payload(p)?),
        SchemaType::Int8 => GenericValue::Int8(i8::from_payload(p)?),
        SchemaType::Int16 => GenericValue::Int16(i16::from_payload(p)?),
        SchemaType::Int32 => GenericValue::Int32(i32::from_payload(p)?),
        SchemaType::Int64 => GenericValue::Int64(i64::from_payload(p)?),
        SchemaType::Float => GenericValue::Float(f32::from_payload(p)?),
        SchemaType::Double => GenericValue::Double(f64::from_payload(p)?),
        SchemaType::Date => GenericValue::Temporal(kind, Date::from_payload(p)?.0),
        SchemaType::Time => GenericValue::Temporal(kind, Time::from_payload(p)?.0),
        SchemaType::Timestamp => GenericValue::Temporal(kind, Timestamp::from_payload(p)?.0),
        SchemaType::LocalDate => GenericValue::Temporal(kind, LocalDate::from_payload(p)?.0),
        SchemaType::LocalTime => GenericValue::Temporal(kind, LocalTime::from_payload(p)?.0),
        SchemaType::Instant => GenericValue::Instant(Instant::from_payload(p)?),
        SchemaType::LocalDateTime => GenericValue::LocalDateTime(LocalDateTime::from_payload(p)?),
        _ => GenericValue::Bytes(Bytes::copy_from_slice(p)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{primitive, KeyValue, KeyValueSchema};

    #[test]
    fn each_writer_kind_decodes_generically() {
        let auto = AutoConsume::new();
        let d = auto
            .writer_decoder(&SchemaInfo::primitive(SchemaType::Int32))
            .unwrap()
            .unwrap();
        assert_eq!(
            d.decode_message(&[0, 0, 0, 5], None).unwrap(),
            GenericValue::Int32(5)
        );
        let j = auto
            .writer_decoder(&SchemaInfo::json("{}"))
            .unwrap()
            .unwrap();
        let v = j.decode_message(br#"{"a":1}"#, None).unwrap();
        assert_eq!(v.to_json(), serde_json::json!({"a": 1}));
        assert_eq!(
            auto.decode(b"raw").unwrap(),
            GenericValue::Bytes(Bytes::from_static(b"raw"))
        );
    }

    #[test]
    fn key_values_decode_both_sides() {
        let kv = KeyValueSchema::new(
            primitive::<String>(),
            primitive::<bool>(),
            KeyValueEncoding::Inline,
        );
        let payload = kv.encode(&KeyValue::new("k".into(), true)).unwrap();
        let d = generic_decoder(kv.info()).unwrap();
        assert_eq!(
            d.decode_message(&payload, None).unwrap().to_json(),
            serde_json::json!({"key": "k", "value": true})
        );
        assert!(validate(kv.info(), &payload, None).is_ok());
        assert!(validate(kv.info(), &payload[..3], None).is_err());
    }

    #[cfg(feature = "avro")]
    #[test]
    fn avro_records_become_json() {
        let def = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"}]}"#;
        let d = generic_decoder(&SchemaInfo::avro(def)).unwrap();
        assert_eq!(
            d.decode_message(&[6], None).unwrap(),
            GenericValue::Record(SchemaType::Avro, serde_json::json!({"id": 3}))
        );
        assert!(validate(&SchemaInfo::avro(def), &[], None).is_err());
    }
}
