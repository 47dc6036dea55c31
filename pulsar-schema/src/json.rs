//! JSON schemas: serde values as JSON text, declared with the Avro-style record definition that
//! the Java client's `JSONSchema.of(Pojo.class)` declares (type `JSON`).

use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Schema, SchemaError, SchemaInfo};

/// JSON values of type `T` (serde). Messages of any version decode alike: JSON is read by field
/// name, so a field added later only needs a serde default (`#[serde(default)]`) to read older
/// messages.
#[derive(Debug, Clone)]
pub struct JsonSchema<T> {
    info: SchemaInfo,
    _value: PhantomData<fn() -> T>,
}

impl<T> JsonSchema<T> {
    /// JSON with this Avro-style record definition (JSON text), for example
    /// `{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}`: the form Java's
    /// `JSONSchema.of(User.class)` and Python's `JsonSchema(User)` declare. The broker checks
    /// compatibility between versions on it.
    pub fn new(definition: impl Into<String>) -> Self {
        JsonSchema::with_info(SchemaInfo::json(definition))
    }

    /// JSON declared with a whole `SchemaInfo` of kind `JSON` (name and properties included).
    pub fn with_info(info: SchemaInfo) -> Self {
        JsonSchema {
            info,
            _value: PhantomData,
        }
    }
}

#[cfg(feature = "avro")]
impl<T: apache_avro::AvroSchema> JsonSchema<T> {
    /// JSON declared with the Avro definition of `T` (`#[derive(apache_avro::AvroSchema)]`), as
    /// [`AvroSchema::of`](crate::AvroSchema::of) writes it.
    pub fn of() -> Self {
        JsonSchema::new(crate::avro::definition_of(&T::get_schema()))
    }
}

impl<T> Schema for JsonSchema<T>
where
    T: Serialize + DeserializeOwned + 'static,
{
    type Value = T;

    fn info(&self) -> &SchemaInfo {
        &self.info
    }

    fn encode(&self, value: &T) -> Result<Bytes, SchemaError> {
        crate::arena::encode(|buf| {
            serde_json::to_writer(bytes::BufMut::writer(buf), value)
                .map_err(|e| SchemaError::Json(e.to_string()))
        })
    }

    fn decode(&self, payload: &[u8]) -> Result<T, SchemaError> {
        serde_json::from_slice(payload).map_err(|e| SchemaError::Json(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SchemaType;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        id: i64,
        name: String,
        #[serde(default)]
        email: Option<String>,
    }

    #[test]
    fn values_are_json_text_and_older_messages_decode() {
        let s = JsonSchema::<User>::new(r#"{"type":"record","name":"User","fields":[]}"#);
        assert_eq!(s.info().kind, SchemaType::Json);
        let u = User {
            id: 1,
            name: "a".into(),
            email: None,
        };
        let b = s.encode(&u).unwrap();
        assert_eq!(&b[..], br#"{"id":1,"name":"a","email":null}"#);
        assert_eq!(s.decode(&b).unwrap(), u);
        assert_eq!(s.decode(br#"{"id":1,"name":"a"}"#).unwrap(), u);
        assert!(matches!(s.decode(b"{"), Err(SchemaError::Json(_))));
    }
}
