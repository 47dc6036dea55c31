//! Schema descriptions: what a producer declares on `PRODUCER`, a consumer on `SUBSCRIBE`, and the
//! schema registry stores and returns (`GET_SCHEMA`, `GET_OR_CREATE_SCHEMA`).
//!
//! [`SchemaInfo`] is the Java client's `SchemaInfo`: a kind ([`SchemaType`], numbered as Java's
//! `SchemaType`), a name, the schema data (an Avro-style definition for JSON and Avro, a
//! descriptor for Protobuf, nothing for primitives) and properties. The registry answers with a
//! [`SchemaVersion`], which producers attach to every message (`MessageMetadata.schema_version`)
//! and consumers read back to pick the decoder of the version a message was written with.
//!
//! The core only carries schemas: encoding and decoding values is the job of the codecs in
//! `pulsar-async` (its `schema` module) and of the application. [`json_payload`] (feature `json`)
//! is kept for producers that encode JSON themselves.

use bytes::Bytes;
use pulsar_proto::pb;

/// The kind of a schema, with the Java client's `SchemaType` numbers ([`SchemaType::value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SchemaType {
    /// No schema (Java `NONE`, 0): the registry's name for raw bytes.
    None,
    /// UTF-8 text (Java `STRING`, 1).
    String,
    /// JSON documents described by an Avro-style record definition (Java `JSON`, 2).
    Json,
    /// Protobuf messages described by an Avro-style definition of the generated class (Java
    /// `PROTOBUF`, 3).
    Protobuf,
    /// Avro binary (Java `AVRO`, 4).
    Avro,
    /// One byte, 0 or 1 (Java `BOOLEAN`, 5).
    Boolean,
    /// One signed byte (Java `INT8`, 6).
    Int8,
    /// Big-endian `i16` (Java `INT16`, 7).
    Int16,
    /// Big-endian `i32` (Java `INT32`, 8).
    Int32,
    /// Big-endian `i64` (Java `INT64`, 9).
    Int64,
    /// Big-endian IEEE 754 `f32` (Java `FLOAT`, 10).
    Float,
    /// Big-endian IEEE 754 `f64` (Java `DOUBLE`, 11).
    Double,
    /// `java.util.Date`: milliseconds since the Unix epoch, big-endian `i64` (Java `DATE`, 12).
    Date,
    /// `java.sql.Time`: milliseconds, big-endian `i64` (Java `TIME`, 13).
    Time,
    /// `java.sql.Timestamp`: milliseconds since the Unix epoch, big-endian `i64` (Java
    /// `TIMESTAMP`, 14).
    Timestamp,
    /// A key and a value, each with its own schema (Java `KEY_VALUE`, 15).
    KeyValue,
    /// `java.time.Instant`: seconds (`i64`) then nanoseconds (`i32`), big-endian (Java `INSTANT`,
    /// 16).
    Instant,
    /// `java.time.LocalDate`: days since 1970-01-01, big-endian `i64` (Java `LOCAL_DATE`, 17).
    LocalDate,
    /// `java.time.LocalTime`: nanoseconds of the day, big-endian `i64` (Java `LOCAL_TIME`, 18).
    LocalTime,
    /// `java.time.LocalDateTime`: epoch day (`i64`) then nanosecond of the day (`i64`), big-endian
    /// (Java `LOCAL_DATE_TIME`, 19).
    LocalDateTime,
    /// Protobuf messages described by a `FileDescriptorSet` (Java `PROTOBUF_NATIVE`, 20).
    ProtobufNative,
    /// Raw bytes (Java `BYTES`, -1): no schema is declared on the wire.
    Bytes,
    /// Consumers only: decode with whatever schema each message was written with (Java
    /// `AUTO_CONSUME`, -3; protocol `AutoConsume`, 21).
    AutoConsume,
    /// Producers only: bytes already encoded for the topic's schema (Java `AUTO_PUBLISH`, -4); the
    /// topic's schema is declared.
    AutoPublish,
}

impl SchemaType {
    /// Every kind, in Java's declaration order.
    pub const ALL: [SchemaType; 24] = [
        SchemaType::None,
        SchemaType::String,
        SchemaType::Json,
        SchemaType::Protobuf,
        SchemaType::Avro,
        SchemaType::Boolean,
        SchemaType::Int8,
        SchemaType::Int16,
        SchemaType::Int32,
        SchemaType::Int64,
        SchemaType::Float,
        SchemaType::Double,
        SchemaType::Date,
        SchemaType::Time,
        SchemaType::Timestamp,
        SchemaType::KeyValue,
        SchemaType::Instant,
        SchemaType::LocalDate,
        SchemaType::LocalTime,
        SchemaType::LocalDateTime,
        SchemaType::ProtobufNative,
        SchemaType::Bytes,
        SchemaType::AutoConsume,
        SchemaType::AutoPublish,
    ];

    /// Java's `SchemaType.getValue()`.
    pub fn value(self) -> i32 {
        match self {
            SchemaType::Bytes => -1,
            SchemaType::AutoConsume => -3,
            SchemaType::AutoPublish => -4,
            other => other.wire_number().unwrap_or(0),
        }
    }

    /// The kind with Java's number `value` (`SchemaType.valueOf(int)`), `None` if unknown.
    pub fn from_value(value: i32) -> Option<SchemaType> {
        SchemaType::ALL.into_iter().find(|t| t.value() == value)
    }

    /// Java's name (`SchemaType.name()`): `STRING`, `KEY_VALUE`, `PROTOBUF_NATIVE`, ...
    pub fn java_name(self) -> &'static str {
        match self {
            SchemaType::None => "NONE",
            SchemaType::String => "STRING",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
            SchemaType::Avro => "AVRO",
            SchemaType::Boolean => "BOOLEAN",
            SchemaType::Int8 => "INT8",
            SchemaType::Int16 => "INT16",
            SchemaType::Int32 => "INT32",
            SchemaType::Int64 => "INT64",
            SchemaType::Float => "FLOAT",
            SchemaType::Double => "DOUBLE",
            SchemaType::Date => "DATE",
            SchemaType::Time => "TIME",
            SchemaType::Timestamp => "TIMESTAMP",
            SchemaType::KeyValue => "KEY_VALUE",
            SchemaType::Instant => "INSTANT",
            SchemaType::LocalDate => "LOCAL_DATE",
            SchemaType::LocalTime => "LOCAL_TIME",
            SchemaType::LocalDateTime => "LOCAL_DATE_TIME",
            SchemaType::ProtobufNative => "PROTOBUF_NATIVE",
            SchemaType::Bytes => "BYTES",
            SchemaType::AutoConsume => "AUTO_CONSUME",
            SchemaType::AutoPublish => "AUTO_PUBLISH",
        }
    }

    /// The kind named `name` as Java names it ([`java_name`](Self::java_name)), ignoring case.
    pub fn from_java_name(name: &str) -> Option<SchemaType> {
        SchemaType::ALL
            .into_iter()
            .find(|t| t.java_name().eq_ignore_ascii_case(name))
    }

    /// Whether values of this kind are structs described by a record definition (JSON, Avro,
    /// Protobuf, Protobuf native), as Java's `SchemaType.isStruct`.
    pub fn is_struct(self) -> bool {
        matches!(
            self,
            SchemaType::Json | SchemaType::Avro | SchemaType::Protobuf | SchemaType::ProtobufNative
        )
    }

    /// Whether this is one of the primitive kinds (Java's `SchemaType.isPrimitive`): the value's
    /// encoding is fixed and the schema data is empty.
    pub fn is_primitive(self) -> bool {
        matches!(
            self,
            SchemaType::String
                | SchemaType::Boolean
                | SchemaType::Int8
                | SchemaType::Int16
                | SchemaType::Int32
                | SchemaType::Int64
                | SchemaType::Float
                | SchemaType::Double
                | SchemaType::Date
                | SchemaType::Time
                | SchemaType::Timestamp
                | SchemaType::Instant
                | SchemaType::LocalDate
                | SchemaType::LocalTime
                | SchemaType::LocalDateTime
                | SchemaType::Bytes
                | SchemaType::None
        )
    }

    /// The protocol's `Schema.Type` number, `None` for kinds never sent (bytes, auto-publish).
    fn wire_number(self) -> Option<i32> {
        use pb::schema::Type as T;
        let t = match self {
            SchemaType::None => T::None,
            SchemaType::String => T::String,
            SchemaType::Json => T::Json,
            SchemaType::Protobuf => T::Protobuf,
            SchemaType::Avro => T::Avro,
            SchemaType::Boolean => T::Bool,
            SchemaType::Int8 => T::Int8,
            SchemaType::Int16 => T::Int16,
            SchemaType::Int32 => T::Int32,
            SchemaType::Int64 => T::Int64,
            SchemaType::Float => T::Float,
            SchemaType::Double => T::Double,
            SchemaType::Date => T::Date,
            SchemaType::Time => T::Time,
            SchemaType::Timestamp => T::Timestamp,
            SchemaType::KeyValue => T::KeyValue,
            SchemaType::Instant => T::Instant,
            SchemaType::LocalDate => T::LocalDate,
            SchemaType::LocalTime => T::LocalTime,
            SchemaType::LocalDateTime => T::LocalDateTime,
            SchemaType::ProtobufNative => T::ProtobufNative,
            SchemaType::AutoConsume => T::AutoConsume,
            SchemaType::Bytes | SchemaType::AutoPublish => return None,
        };
        Some(t as i32)
    }

    /// The kind of a protocol `Schema.Type` number (unknown numbers are `None`).
    fn from_wire(number: i32) -> Option<SchemaType> {
        if number == pb::schema::Type::AutoConsume as i32 {
            return Some(SchemaType::AutoConsume);
        }
        SchemaType::from_value(number).filter(|t| t.value() >= 0)
    }
}

impl std::fmt::Display for SchemaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.java_name())
    }
}

/// A schema version the registry assigned (opaque bytes; the broker's default registry uses an
/// 8-byte big-endian counter, see [`SchemaVersion::number`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaVersion(pub Bytes);

impl SchemaVersion {
    /// The version as the broker's default registry numbers it (0, 1, ...): the bytes read as a
    /// big-endian `i64`. `None` when they are not 8 bytes long.
    pub fn number(&self) -> Option<i64> {
        let bytes: [u8; 8] = self.0.as_ref().try_into().ok()?;
        Some(i64::from_be_bytes(bytes))
    }

    /// The version with the default registry's number `n`.
    pub fn from_number(n: i64) -> SchemaVersion {
        SchemaVersion(Bytes::copy_from_slice(&n.to_be_bytes()))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A schema: the Java client's `SchemaInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaInfo {
    /// Name (informational; Java names primitives `String`, `INT32`, ... and records after
    /// their class).
    pub name: String,
    /// Kind.
    pub kind: SchemaType,
    /// The schema data: the Avro-style definition (JSON text) for JSON, Avro and Protobuf, the
    /// descriptor for Protobuf native, the two encoded schemas for key-value, empty for
    /// primitives.
    pub definition: Bytes,
    /// Properties, in order (Java keeps a map: keys are unique).
    pub properties: Vec<(String, String)>,
}

impl SchemaInfo {
    /// A schema of `kind` named `name` with this data and no properties.
    pub fn new(kind: SchemaType, name: impl Into<String>, definition: impl Into<Bytes>) -> Self {
        SchemaInfo {
            name: name.into(),
            kind,
            definition: definition.into(),
            properties: Vec::new(),
        }
    }

    /// Adds the property `key` = `value` (builder style; a key already present is replaced).
    #[must_use]
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.properties.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.properties.push((key, value)),
        }
        self
    }

    /// The value of property `key`.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Raw bytes (the same as no schema).
    pub fn bytes() -> SchemaInfo {
        SchemaInfo::primitive(SchemaType::Bytes)
    }

    /// UTF-8 strings (the Java client's `Schema.STRING`).
    pub fn string() -> SchemaInfo {
        SchemaInfo::primitive(SchemaType::String)
    }

    /// The schema of a primitive kind with the Java client's name for it (`Schema.INT32` is
    /// named `INT32`, `Schema.BOOL` `Boolean`, ...). Struct and key-value kinds get an empty
    /// definition: build those with [`new`](Self::new).
    pub fn primitive(kind: SchemaType) -> SchemaInfo {
        let name = match kind {
            SchemaType::String => "String",
            SchemaType::Boolean => "Boolean",
            SchemaType::Float => "Float",
            SchemaType::Double => "Double",
            SchemaType::Date => "Date",
            SchemaType::Time => "Time",
            SchemaType::Timestamp => "Timestamp",
            SchemaType::Instant => "Instant",
            SchemaType::LocalDate => "LocalDate",
            SchemaType::LocalTime => "LocalTime",
            SchemaType::LocalDateTime => "LocalDateTime",
            SchemaType::Bytes => "Bytes",
            other => other.java_name(),
        };
        SchemaInfo::new(kind, name, Bytes::new())
    }

    /// JSON with this Avro-style record definition, for example
    /// `{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}` (the Python
    /// client's `JsonSchema(User).schema_info()` definition and the Java client's
    /// `JSONSchema.of(User.class)` one have this form).
    pub fn json(definition: impl Into<String>) -> SchemaInfo {
        SchemaInfo::new(SchemaType::Json, "", Bytes::from(definition.into()))
    }

    /// Avro with this schema definition (JSON text).
    pub fn avro(definition: impl Into<String>) -> SchemaInfo {
        SchemaInfo::new(SchemaType::Avro, "", Bytes::from(definition.into()))
    }

    /// The consumer's AUTO_CONSUME declaration (no data).
    pub fn auto_consume() -> SchemaInfo {
        SchemaInfo::new(SchemaType::AutoConsume, "AutoConsume", Bytes::new())
    }

    /// The definition as text, if it is UTF-8 (JSON, Avro and Protobuf definitions are).
    pub fn definition_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.definition).ok()
    }

    /// The wire form, `None` for kinds that declare nothing: bytes (and `None`), the way the Java
    /// client leaves `Schema.BYTES` out of `PRODUCER` and `SUBSCRIBE`.
    pub fn to_pb(&self) -> Option<pb::Schema> {
        if matches!(self.kind, SchemaType::None) {
            return None;
        }
        let kind = self.kind.wire_number()?;
        Some(pb::Schema {
            name: self.name.clone(),
            schema_data: self.definition.clone(),
            r#type: kind,
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

    /// The schema the broker sent, `None` for a type number this client does not know.
    pub fn from_pb(schema: &pb::Schema) -> Option<SchemaInfo> {
        let kind = SchemaType::from_wire(schema.r#type)?;
        // The registry stores "no schema" as NONE; Java reads it back as BYTES.
        let kind = if kind == SchemaType::None {
            SchemaType::Bytes
        } else {
            kind
        };
        Some(SchemaInfo {
            name: schema.name.clone(),
            kind,
            definition: schema.schema_data.clone(),
            properties: schema
                .properties
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
        })
    }
}

/// A schema the registry returned (`GET_SCHEMA`), with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionedSchema {
    /// The schema.
    pub info: SchemaInfo,
    /// Its version.
    pub version: SchemaVersion,
}

impl VersionedSchema {
    /// A schema and its version.
    pub fn new(info: SchemaInfo, version: SchemaVersion) -> Self {
        VersionedSchema { info, version }
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
        let auto = SchemaInfo::auto_consume().to_pb().unwrap();
        assert_eq!(auto.r#type, 21);
    }

    #[test]
    fn java_numbers_and_names() {
        let expected = [
            ("NONE", 0),
            ("STRING", 1),
            ("JSON", 2),
            ("PROTOBUF", 3),
            ("AVRO", 4),
            ("BOOLEAN", 5),
            ("INT8", 6),
            ("INT16", 7),
            ("INT32", 8),
            ("INT64", 9),
            ("FLOAT", 10),
            ("DOUBLE", 11),
            ("DATE", 12),
            ("TIME", 13),
            ("TIMESTAMP", 14),
            ("KEY_VALUE", 15),
            ("INSTANT", 16),
            ("LOCAL_DATE", 17),
            ("LOCAL_TIME", 18),
            ("LOCAL_DATE_TIME", 19),
            ("PROTOBUF_NATIVE", 20),
            ("BYTES", -1),
            ("AUTO_CONSUME", -3),
            ("AUTO_PUBLISH", -4),
        ];
        for (kind, (name, value)) in SchemaType::ALL.into_iter().zip(expected) {
            assert_eq!((kind.java_name(), kind.value()), (name, value));
            assert_eq!(SchemaType::from_value(value), Some(kind));
            assert_eq!(SchemaType::from_java_name(name), Some(kind));
        }
        assert_eq!(SchemaType::from_value(-2), None);
    }

    #[test]
    fn from_pb_reads_every_wire_kind_back() {
        for kind in SchemaType::ALL {
            let info = SchemaInfo::new(kind, "n", Bytes::from_static(b"d")).with_property("a", "b");
            match info.to_pb() {
                None => assert!(matches!(
                    kind,
                    SchemaType::None | SchemaType::Bytes | SchemaType::AutoPublish
                )),
                Some(pb) => assert_eq!(SchemaInfo::from_pb(&pb), Some(info)),
            }
        }
        let none = pb::Schema {
            r#type: 0,
            ..Default::default()
        };
        assert_eq!(SchemaInfo::from_pb(&none).unwrap().kind, SchemaType::Bytes);
        let unknown = pb::Schema {
            r#type: 99,
            ..Default::default()
        };
        assert_eq!(SchemaInfo::from_pb(&unknown), None);
    }

    #[test]
    fn versions_are_big_endian_counters() {
        let v = SchemaVersion::from_number(3);
        assert_eq!(v.as_bytes(), &[0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(v.number(), Some(3));
        assert_eq!(SchemaVersion(Bytes::from_static(b"x")).number(), None);
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
