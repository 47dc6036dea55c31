//! Schemas a producer declares on `PRODUCER`: bytes (none), string and JSON.
//!
//! The broker stores the schema in its registry and answers with a schema version, which the
//! producer attaches to every message (`MessageMetadata.schema_version`) so consumers can decode
//! it. The payloads themselves are plain bytes for the core: [`json_payload`] serializes a value
//! with serde for a JSON schema.

use bytes::Bytes;
use pulsar_proto::pb;

/// The kind of a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchemaType {
    /// Raw bytes: no schema is sent.
    Bytes,
    /// UTF-8 text (protocol `String`).
    String,
    /// JSON documents described by an Avro-style record definition (protocol `Json`), as the Java
    /// and Python clients' JSON schemas declare them.
    Json,
}

/// A schema as declared on `PRODUCER`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaInfo {
    /// Name (informational).
    pub name: String,
    /// Kind.
    pub kind: SchemaType,
    /// The definition (for JSON: the Avro-style record definition, as JSON text).
    pub definition: Bytes,
    /// Properties.
    pub properties: Vec<(String, String)>,
}

impl SchemaInfo {
    /// Raw bytes (the same as no schema).
    pub fn bytes() -> SchemaInfo {
        SchemaInfo {
            name: "Bytes".into(),
            kind: SchemaType::Bytes,
            definition: Bytes::new(),
            properties: Vec::new(),
        }
    }

    /// UTF-8 strings (the Java client's `Schema.STRING`).
    pub fn string() -> SchemaInfo {
        SchemaInfo {
            name: "String".into(),
            kind: SchemaType::String,
            definition: Bytes::new(),
            properties: Vec::new(),
        }
    }

    /// JSON with this Avro-style record definition, for example
    /// `{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}` (the Python
    /// client's `JsonSchema(User).schema_info()` definition and the Java client's
    /// `JSONSchema.of(User.class)` one have this form).
    pub fn json(definition: impl Into<String>) -> SchemaInfo {
        SchemaInfo {
            name: String::new(),
            kind: SchemaType::Json,
            definition: Bytes::from(definition.into()),
            properties: Vec::new(),
        }
    }

    /// The wire form, `None` for bytes (no schema is declared).
    pub(crate) fn to_pb(&self) -> Option<pb::Schema> {
        let kind = match self.kind {
            SchemaType::Bytes => return None,
            SchemaType::String => pb::schema::Type::String,
            SchemaType::Json => pb::schema::Type::Json,
        };
        Some(pb::Schema {
            name: self.name.clone(),
            schema_data: self.definition.clone(),
            r#type: kind as i32,
            properties: self
                .properties
                .iter()
                .map(|(k, v)| pb::KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        })
    }
}

/// Serializes `value` as the JSON payload of a message for a [`SchemaType::Json`] producer.
#[cfg(feature = "json")]
pub fn json_payload<T: serde::Serialize + ?Sized>(value: &T) -> Result<Bytes, serde_json::Error> {
    serde_json::to_vec(value).map(Bytes::from)
}

/// Deserializes a JSON payload (the inverse of [`json_payload`]).
#[cfg(feature = "json")]
pub fn from_json_payload<T: serde::de::DeserializeOwned>(
    payload: &[u8],
) -> Result<T, serde_json::Error> {
    serde_json::from_slice(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        assert_eq!(SchemaInfo::bytes().to_pb(), None);
        let s = SchemaInfo::string().to_pb().unwrap();
        assert_eq!(s.r#type, pb::schema::Type::String as i32);
        assert!(s.schema_data.is_empty());
        let def = r#"{"type":"record","name":"U","fields":[]}"#;
        let j = SchemaInfo::json(def).to_pb().unwrap();
        assert_eq!(j.r#type, 2);
        assert_eq!(&j.schema_data[..], def.as_bytes());
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_round_trip() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct U {
            id: i64,
            name: String,
        }
        let u = U {
            id: 7,
            name: "x".into(),
        };
        let b = json_payload(&u).unwrap();
        assert_eq!(&b[..], br#"{"id":7,"name":"x"}"#);
        assert_eq!(from_json_payload::<U>(&b).unwrap(), u);
    }
}
