//! Avro schemas: Avro binary (no container header, as the Java client writes each message) for
//! serde values, declared with the schema's JSON definition (type `AVRO`). Messages written under
//! another version of the topic's schema are read through Avro schema resolution (the writer's
//! definition, fetched by version, resolved into this reader's).

use std::marker::PhantomData;
use std::sync::Arc;

use apache_avro::Schema as Avro;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Decoder, Schema, SchemaError, SchemaInfo, SchemaType};

/// Avro values of type `T` (serde), with one Avro schema.
#[derive(Debug, Clone)]
pub struct AvroSchema<T> {
    info: SchemaInfo,
    schema: Arc<Avro>,
    _value: PhantomData<fn() -> T>,
}

impl<T> AvroSchema<T> {
    /// Avro with this schema definition (JSON text), declared as given: pass the text Java's
    /// `AvroSchema.of(Pojo.class).getSchemaInfo().getSchemaDefinition()` prints to register as the
    /// same schema version as the Java producer (the registry compares definitions byte for byte).
    pub fn new(definition: impl Into<String>) -> Result<Self, SchemaError> {
        let definition = definition.into();
        let schema = parse(&definition)?;
        Ok(AvroSchema {
            info: SchemaInfo::avro(definition),
            schema: Arc::new(schema),
            _value: PhantomData,
        })
    }

    /// The parsed Avro schema.
    pub fn avro_schema(&self) -> &Avro {
        &self.schema
    }
}

impl<T: apache_avro::AvroSchema> AvroSchema<T> {
    /// Avro with the schema of `T` (`#[derive(apache_avro::AvroSchema)]` with apache-avro's
    /// `derive` feature, or a hand-written impl), written as JSON in the form Java's `Schema.toString()`
    /// has: `{"type":"record","name":..,"namespace":..,"fields":[{"name":..,"type":..}, ..]}`.
    pub fn of() -> Self {
        let schema = T::get_schema();
        AvroSchema {
            info: SchemaInfo::avro(definition_of(&schema)),
            schema: Arc::new(schema),
            _value: PhantomData,
        }
    }
}

impl<T> Schema for AvroSchema<T>
where
    T: Serialize + DeserializeOwned + 'static,
{
    type Value = T;

    fn info(&self) -> &SchemaInfo {
        &self.info
    }

    fn encode(&self, value: &T) -> Result<Bytes, SchemaError> {
        let direct = crate::arena::encode(|buf| {
            apache_avro::write_avro_datum_ref(&self.schema, value, &mut bytes::BufMut::writer(buf))
                .map(drop)
        });
        match direct {
            Ok(payload) => Ok(payload),
            // The direct serializer takes a record only from a struct; a map (a JSON object, a
            // `serde_json::Value`) goes through apache-avro's generic value, resolved into the
            // schema.
            Err(direct) => {
                let generic = apache_avro::to_value(value)
                    .and_then(|v| v.resolve(&self.schema))
                    .map_err(|_| avro_error(direct))?;
                apache_avro::to_avro_datum(&self.schema, generic)
                    .map(Bytes::from)
                    .map_err(avro_error)
            }
        }
    }

    fn decode(&self, payload: &[u8]) -> Result<T, SchemaError> {
        decode_with(&self.schema, None, payload)
    }

    fn uses_writer_schema(&self) -> bool {
        true
    }

    fn writer_decoder(
        &self,
        writer: &SchemaInfo,
    ) -> Result<Option<Arc<dyn Decoder<T>>>, SchemaError> {
        if writer.definition == self.info.definition {
            return Ok(None);
        }
        let writer = writer_schema(writer)?;
        if writer.canonical_form() == self.schema.canonical_form() {
            return Ok(None);
        }
        Ok(Some(Arc::new(Resolving::<T> {
            writer,
            reader: Arc::clone(&self.schema),
            _value: PhantomData,
        })))
    }
}

/// Reads messages written with another Avro schema into this one's values.
struct Resolving<T> {
    writer: Avro,
    reader: Arc<Avro>,
    _value: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Decoder<T> for Resolving<T> {
    fn decode_message(&self, payload: &[u8], _key: Option<&[u8]>) -> Result<T, SchemaError> {
        decode_with(&self.writer, Some(&self.reader), payload)
    }
}

/// The value of `payload`, written with `writer` and read as `reader` (the writer's own schema
/// when `None`).
fn decode_with<T: DeserializeOwned>(
    writer: &Avro,
    reader: Option<&Avro>,
    mut payload: &[u8],
) -> Result<T, SchemaError> {
    let value = apache_avro::from_avro_datum(writer, &mut payload, reader).map_err(avro_error)?;
    apache_avro::from_value(&value).map_err(avro_error)
}

/// The Avro schema of a registry entry whose definition is Avro-style (AVRO, JSON, PROTOBUF).
pub(crate) fn writer_schema(info: &SchemaInfo) -> Result<Avro, SchemaError> {
    match info.kind {
        SchemaType::Avro | SchemaType::Json | SchemaType::Protobuf => {}
        other => {
            return Err(SchemaError::Definition(format!(
                "a {other} schema has no Avro definition"
            )))
        }
    }
    let text = info
        .definition_str()
        .ok_or_else(|| SchemaError::Definition("the definition is not UTF-8".into()))?;
    parse(text)
}

/// Parses an Avro schema definition.
pub(crate) fn parse(definition: &str) -> Result<Avro, SchemaError> {
    Avro::parse_str(definition).map_err(|e| SchemaError::Definition(e.to_string()))
}

/// Reads one Avro datum written with `schema` as a generic value.
pub(crate) fn read_generic(
    schema: &Avro,
    mut payload: &[u8],
) -> Result<apache_avro::types::Value, SchemaError> {
    apache_avro::from_avro_datum(schema, &mut payload, None).map_err(avro_error)
}

/// The JSON text of an Avro schema (the form Java's `Schema.toString()` has for records derived
/// from classes).
pub(crate) fn definition_of(schema: &Avro) -> String {
    // Serializing a parsed schema to JSON cannot fail (string keys, no non-finite floats).
    serde_json::to_string(schema).unwrap_or_default()
}

fn avro_error(e: apache_avro::Error) -> SchemaError {
    SchemaError::Avro(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null}]}"#;
    const V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null},{"name":"age","type":"int","default":18}]}"#;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct UserV1 {
        id: i64,
        name: Option<String>,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct UserV2 {
        id: i64,
        name: Option<String>,
        age: i32,
    }

    #[test]
    fn binary_is_plain_avro_and_declared_as_given() {
        let s = AvroSchema::<UserV1>::new(V1).unwrap();
        assert_eq!(s.info().kind, SchemaType::Avro);
        assert_eq!(s.info().definition_str(), Some(V1));
        let u = UserV1 {
            id: 3,
            name: Some("ab".into()),
        };
        let b = s.encode(&u).unwrap();
        // zig-zag 3 = 6; union branch 1 = 2, then length 2 (= 4) and the bytes
        assert_eq!(&b[..], &[6, 2, 4, b'a', b'b']);
        assert_eq!(s.decode(&b).unwrap(), u);
    }

    #[test]
    fn a_v2_reader_reads_v1_messages_through_the_writers_schema() {
        let v1 = AvroSchema::<UserV1>::new(V1).unwrap();
        let v2 = AvroSchema::<UserV2>::new(V2).unwrap();
        let old = v1.encode(&UserV1 { id: 1, name: None }).unwrap();
        let decoder = v2.writer_decoder(v1.info()).unwrap().unwrap();
        assert_eq!(
            decoder.decode_message(&old, None).unwrap(),
            UserV2 {
                id: 1,
                name: None,
                age: 18
            }
        );
        assert!(v2.writer_decoder(v2.info()).unwrap().is_none());
        assert!(v2.decode(&old).is_err(), "v1 bytes are not v2 bytes");
    }

    #[test]
    fn json_values_encode_as_records() {
        let json = AvroSchema::<serde_json::Value>::new(V1).unwrap();
        let typed = AvroSchema::<UserV1>::new(V1).unwrap();
        let u = UserV1 {
            id: 3,
            name: Some("ab".into()),
        };
        let b = json
            .encode(&serde_json::json!({"id": 3, "name": "ab"}))
            .unwrap();
        assert_eq!(b, typed.encode(&u).unwrap());
        let none = json.encode(&serde_json::json!({"id": 3})).unwrap();
        assert_eq!(&none[..], &[6, 0]);
        assert!(json.encode(&serde_json::json!({"name": "no id"})).is_err());
    }

    #[test]
    fn definitions_written_from_a_parsed_schema_have_javas_form() {
        assert_eq!(definition_of(&parse(V1).unwrap()), V1);
    }

    #[test]
    fn bad_definitions_and_payloads_are_typed_errors() {
        assert!(matches!(
            AvroSchema::<UserV1>::new("{"),
            Err(SchemaError::Definition(_))
        ));
        let s = AvroSchema::<UserV1>::new(V1).unwrap();
        assert!(matches!(s.decode(&[6, 9]), Err(SchemaError::Avro(_))));
    }
}
