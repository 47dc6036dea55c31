//! Protobuf schemas for prost messages: the payload is the message's Protobuf encoding, as the Java
//! client's `ProtobufSchema` and `ProtobufNativeSchema` write it.
//!
//! - `PROTOBUF` ([`ProtobufSchema`]) declares an Avro-style record definition of the message (Java
//!   derives it from the generated class; pass the same text to register the same schema).
//! - `PROTOBUF_NATIVE` ([`ProtobufNativeSchema`]) declares the message's `FileDescriptorSet`, as
//!   Java's `{"fileDescriptorSet":<base64>,"rootMessageTypeName":..,"rootFileDescriptorName":..}`.

use std::marker::PhantomData;

use base64::Engine as _;
use bytes::Bytes;

use crate::{Schema, SchemaError, SchemaInfo, SchemaType};

/// Prost messages of type `M` with a `PROTOBUF` schema.
#[derive(Debug, Clone)]
pub struct ProtobufSchema<M> {
    info: SchemaInfo,
    _value: PhantomData<fn() -> M>,
}

impl<M> ProtobufSchema<M> {
    /// `PROTOBUF` with this Avro-style definition of the message (JSON text).
    pub fn new(definition: impl Into<String>) -> Self {
        ProtobufSchema {
            info: SchemaInfo::new(SchemaType::Protobuf, "", definition.into()),
            _value: PhantomData,
        }
    }
}

impl<M: prost::Message + Default + 'static> Schema for ProtobufSchema<M> {
    type Value = M;

    fn info(&self) -> &SchemaInfo {
        &self.info
    }

    fn encode(&self, value: &M) -> Result<Bytes, SchemaError> {
        encode(value)
    }

    fn decode(&self, payload: &[u8]) -> Result<M, SchemaError> {
        M::decode(payload).map_err(|e| SchemaError::Protobuf(e.to_string()))
    }
}

/// Prost messages of type `M` with a `PROTOBUF_NATIVE` schema.
#[derive(Debug, Clone)]
pub struct ProtobufNativeSchema<M> {
    info: SchemaInfo,
    _value: PhantomData<fn() -> M>,
}

impl<M> ProtobufNativeSchema<M> {
    /// `PROTOBUF_NATIVE` for the message `root_message` (its full name, `package.Message`) of
    /// the file `root_file` (`name.proto`), described by `file_descriptor_set` (an encoded
    /// `google.protobuf.FileDescriptorSet` holding that file and its imports: prost-build's
    /// `file_descriptor_set_path` writes one).
    pub fn new(file_descriptor_set: &[u8], root_message: &str, root_file: &str) -> Self {
        let fds = base64::engine::general_purpose::STANDARD.encode(file_descriptor_set);
        let definition = format!(
            r#"{{"fileDescriptorSet":"{fds}","rootMessageTypeName":{},"rootFileDescriptorName":{}}}"#,
            quote(root_message),
            quote(root_file)
        );
        ProtobufNativeSchema {
            info: SchemaInfo::new(SchemaType::ProtobufNative, "", definition),
            _value: PhantomData,
        }
    }
}

impl<M: prost::Message + Default + 'static> Schema for ProtobufNativeSchema<M> {
    type Value = M;

    fn info(&self) -> &SchemaInfo {
        &self.info
    }

    fn encode(&self, value: &M) -> Result<Bytes, SchemaError> {
        encode(value)
    }

    fn decode(&self, payload: &[u8]) -> Result<M, SchemaError> {
        M::decode(payload).map_err(|e| SchemaError::Protobuf(e.to_string()))
    }
}

/// The Protobuf encoding of `value`, cut from the encoding arena.
fn encode<M: prost::Message>(value: &M) -> Result<Bytes, SchemaError> {
    crate::arena::encode(|buf| {
        buf.reserve(value.encoded_len());
        value
            .encode(buf)
            .map_err(|e| SchemaError::Protobuf(e.to_string()))
    })
}

/// `s` as a JSON string literal (names of messages and files: no control characters expected,
/// escaped anyway).
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Point {
        #[prost(int32, tag = "1")]
        x: i32,
        #[prost(string, tag = "2")]
        label: String,
    }

    #[test]
    fn payloads_are_the_protobuf_encoding() {
        let s = ProtobufSchema::<Point>::new(r#"{"type":"record","name":"Point","fields":[]}"#);
        let p = Point {
            x: 150,
            label: "a".into(),
        };
        let b = s.encode(&p).unwrap();
        assert_eq!(&b[..], &[0x08, 0x96, 0x01, 0x12, 1, b'a']);
        assert_eq!(s.decode(&b).unwrap(), p);
        assert!(matches!(s.decode(&[0x08]), Err(SchemaError::Protobuf(_))));
        assert_eq!(s.info().kind, SchemaType::Protobuf);
    }

    #[test]
    fn native_declares_the_descriptor_set_as_java() {
        let s = ProtobufNativeSchema::<Point>::new(&[1, 2, 3], "pkg.Point", "point.proto");
        assert_eq!(s.info().kind, SchemaType::ProtobufNative);
        assert_eq!(
            s.info().definition_str(),
            Some(
                r#"{"fileDescriptorSet":"AQID","rootMessageTypeName":"pkg.Point","rootFileDescriptorName":"point.proto"}"#
            )
        );
    }
}
