//! Key-value schemas: a key and a value, each with its own schema, as the Java client's
//! `Schema.KeyValue(key, value, encoding)` encodes them.
//!
//! - INLINE: the payload is `[key length: i32][key][value length: i32][value]`, big-endian (a
//!   length of -1 is Java's null, refused here).
//! - SEPARATED: the payload is the value; the key goes in the message key, base64-encoded (so the
//!   key routes and compacts the message).
//!
//! The declared `SchemaInfo` is Java's: type `KEY_VALUE`, name `KeyValue`, the data
//! `[key schema length][key schema data][value schema length][value schema data]` and the
//! properties `key.schema.name`, `key.schema.type`, `key.schema.properties` (JSON), the same for
//! `value.`, and `kv.encoding.type`.

use std::sync::Arc;

use bytes::Bytes;

use crate::{Decoder, Schema, SchemaError, SchemaInfo, SchemaType};

/// Where a key-value message keeps its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyValueEncoding {
    /// Key and value in the payload.
    Inline,
    /// The value in the payload, the key in the message key (base64).
    Separated,
}

impl KeyValueEncoding {
    /// Java's name (`kv.encoding.type`).
    pub fn java_name(self) -> &'static str {
        match self {
            KeyValueEncoding::Inline => "INLINE",
            KeyValueEncoding::Separated => "SEPARATED",
        }
    }

    /// The encoding a key-value `SchemaInfo` declares (`kv.encoding.type`; INLINE when absent, as
    /// Java reads it).
    pub fn of(info: &SchemaInfo) -> Result<KeyValueEncoding, SchemaError> {
        match info.property("kv.encoding.type") {
            None => Ok(KeyValueEncoding::Inline),
            Some(v) if v.eq_ignore_ascii_case("INLINE") => Ok(KeyValueEncoding::Inline),
            Some(v) if v.eq_ignore_ascii_case("SEPARATED") => Ok(KeyValueEncoding::Separated),
            Some(v) => Err(SchemaError::KeyValue(format!("unknown encoding {v:?}"))),
        }
    }
}

/// A key and a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct KeyValue<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
}

impl<K, V> KeyValue<K, V> {
    /// A key and a value.
    pub fn new(key: K, value: V) -> Self {
        KeyValue { key, value }
    }
}

/// The schema of [`KeyValue`]s whose key has schema `K` and value schema `V`.
#[derive(Debug, Clone)]
pub struct KeyValueSchema<K, V> {
    key: Arc<K>,
    value: Arc<V>,
    encoding: KeyValueEncoding,
    info: SchemaInfo,
}

impl<K: Schema, V: Schema> KeyValueSchema<K, V> {
    /// Keys with `key`'s schema, values with `value`'s, kept as `encoding` says.
    pub fn new(key: K, value: V, encoding: KeyValueEncoding) -> Self {
        let info = key_value_info(key.info(), value.info(), encoding);
        KeyValueSchema {
            key: Arc::new(key),
            value: Arc::new(value),
            encoding,
            info,
        }
    }

    /// The encoding.
    pub fn encoding(&self) -> KeyValueEncoding {
        self.encoding
    }
}

impl<K: Schema, V: Schema> Schema for KeyValueSchema<K, V> {
    type Value = KeyValue<K::Value, V::Value>;

    fn info(&self) -> &SchemaInfo {
        &self.info
    }

    fn encode(&self, kv: &Self::Value) -> Result<Bytes, SchemaError> {
        match self.encoding {
            KeyValueEncoding::Inline => Ok(join(
                &self.key.encode(&kv.key)?,
                &self.value.encode(&kv.value)?,
            )),
            KeyValueEncoding::Separated => self.value.encode(&kv.value),
        }
    }

    fn decode(&self, payload: &[u8]) -> Result<Self::Value, SchemaError> {
        self.decode_message(payload, None)
    }

    fn encode_message(&self, kv: &Self::Value) -> Result<(Bytes, Option<Bytes>), SchemaError> {
        match self.encoding {
            KeyValueEncoding::Inline => Ok((self.encode(kv)?, None)),
            KeyValueEncoding::Separated => Ok((
                self.value.encode(&kv.value)?,
                Some(self.key.encode(&kv.key)?),
            )),
        }
    }

    fn decode_message(
        &self,
        payload: &[u8],
        key: Option<&[u8]>,
    ) -> Result<Self::Value, SchemaError> {
        let (k, v) = split(self.encoding, payload, key)?;
        Ok(KeyValue {
            key: self.key.decode(k)?,
            value: self.value.decode(v)?,
        })
    }

    fn uses_writer_schema(&self) -> bool {
        self.key.uses_writer_schema() || self.value.uses_writer_schema()
    }

    fn writer_decoder(
        &self,
        writer: &SchemaInfo,
    ) -> Result<Option<Arc<dyn Decoder<Self::Value>>>, SchemaError> {
        let (wk, wv) = split_info(writer)?;
        let encoding = KeyValueEncoding::of(writer)?;
        let (dk, dv) = (
            self.key.writer_decoder(&wk)?,
            self.value.writer_decoder(&wv)?,
        );
        if dk.is_none() && dv.is_none() && encoding == self.encoding {
            return Ok(None);
        }
        Ok(Some(Arc::new(Parts {
            encoding,
            key: dk.unwrap_or_else(|| own_decoder(&self.key)),
            value: dv.unwrap_or_else(|| own_decoder(&self.value)),
        })))
    }
}

/// The key and value bytes of a message.
pub(crate) fn split<'a>(
    encoding: KeyValueEncoding,
    payload: &'a [u8],
    key: Option<&'a [u8]>,
) -> Result<(&'a [u8], &'a [u8]), SchemaError> {
    match encoding {
        KeyValueEncoding::Inline => {
            let (k, rest) = take(payload)?;
            let (v, rest) = take(rest)?;
            if !rest.is_empty() {
                return Err(SchemaError::KeyValue(format!(
                    "{} bytes after the value",
                    rest.len()
                )));
            }
            Ok((k, v))
        }
        KeyValueEncoding::Separated => {
            let k = key.ok_or_else(|| SchemaError::KeyValue("the message has no key".into()))?;
            Ok((k, payload))
        }
    }
}

/// The key's and the value's `SchemaInfo` inside a key-value `SchemaInfo` (Java's
/// `KeyValueSchemaInfo.decodeKeyValueSchemaInfo`).
pub fn split_info(info: &SchemaInfo) -> Result<(SchemaInfo, SchemaInfo), SchemaError> {
    if info.kind != SchemaType::KeyValue {
        return Err(SchemaError::KeyValue(format!(
            "a {} schema is not a key-value schema",
            info.kind
        )));
    }
    let (k, rest) = take(&info.definition)?;
    let (v, _) = take(rest)?;
    let side = |prefix: &str, data: &[u8]| -> Result<SchemaInfo, SchemaError> {
        let kind = info
            .property(&format!("{prefix}.schema.type"))
            .map_or(Some(SchemaType::Bytes), SchemaType::from_java_name)
            .ok_or_else(|| SchemaError::KeyValue(format!("unknown {prefix} schema type")))?;
        let name = info
            .property(&format!("{prefix}.schema.name"))
            .unwrap_or_default();
        let mut sub = SchemaInfo::new(kind, name, Bytes::copy_from_slice(data));
        if let Some(props) = info.property(&format!("{prefix}.schema.properties")) {
            sub.properties = parse_properties(props)?;
        }
        Ok(sub)
    };
    Ok((side("key", k)?, side("value", v)?))
}

/// Java's key-value `SchemaInfo` for these key and value schemas (what [`KeyValueSchema`]
/// declares; for tools that build key-value messages without typed schemas).
pub fn key_value_info(
    key: &SchemaInfo,
    value: &SchemaInfo,
    encoding: KeyValueEncoding,
) -> SchemaInfo {
    let data = |i: &SchemaInfo| match i.kind {
        SchemaType::Bytes | SchemaType::None => Bytes::new(),
        _ => i.definition.clone(),
    };
    let mut info = SchemaInfo::new(
        SchemaType::KeyValue,
        "KeyValue",
        join(&data(key), &data(value)),
    );
    for (prefix, side) in [("key", key), ("value", value)] {
        info = info
            .with_property(format!("{prefix}.schema.name"), side.name.clone())
            .with_property(format!("{prefix}.schema.type"), side.kind.java_name())
            .with_property(
                format!("{prefix}.schema.properties"),
                properties_json(&side.properties),
            );
    }
    info.with_property("kv.encoding.type", encoding.java_name())
}

/// The INLINE payload of a key and a value already encoded:
/// `[len: i32][key][len: i32][value]`, big-endian.
pub fn encode_inline(key: &[u8], value: &[u8]) -> Bytes {
    join(key, value)
}

/// `[len: i32][a][len: i32][b]`, big-endian.
fn join(a: &[u8], b: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(8 + a.len() + b.len());
    for part in [a, b] {
        // Parts come from encoders of in-memory values: over 2 GiB is not a Pulsar message.
        let len = i32::try_from(part.len()).unwrap_or(i32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part);
    }
    Bytes::from(out)
}

/// One length-prefixed part and the rest.
fn take(data: &[u8]) -> Result<(&[u8], &[u8]), SchemaError> {
    let (len, rest) = data
        .split_first_chunk::<4>()
        .ok_or_else(|| SchemaError::KeyValue("truncated length".into()))?;
    let len = i32::from_be_bytes(*len);
    let len = usize::try_from(len)
        .map_err(|_| SchemaError::KeyValue(format!("null or negative part length {len}")))?;
    if len > rest.len() {
        return Err(SchemaError::KeyValue(format!(
            "part of {len} bytes, {} left",
            rest.len()
        )));
    }
    Ok(rest.split_at(len))
}

/// A JSON object of string properties (`{}` when empty), the form Java's Gson writes.
fn properties_json(props: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in props.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&json_string(k));
        out.push(':');
        out.push_str(&json_string(v));
    }
    out.push('}');
    out
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
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

/// The string properties of a JSON object (what [`properties_json`] writes; with the `json`
/// feature any JSON object of strings).
fn parse_properties(text: &str) -> Result<Vec<(String, String)>, SchemaError> {
    #[cfg(feature = "json")]
    {
        let map: std::collections::BTreeMap<String, String> =
            serde_json::from_str(text).map_err(|e| SchemaError::KeyValue(e.to_string()))?;
        Ok(map.into_iter().collect())
    }
    #[cfg(not(feature = "json"))]
    {
        let _ = text;
        Ok(Vec::new())
    }
}

/// Reads each side with its own decoder.
struct Parts<K, V> {
    encoding: KeyValueEncoding,
    key: Arc<dyn Decoder<K>>,
    value: Arc<dyn Decoder<V>>,
}

impl<K, V> Decoder<KeyValue<K, V>> for Parts<K, V> {
    fn decode_message(
        &self,
        payload: &[u8],
        key: Option<&[u8]>,
    ) -> Result<KeyValue<K, V>, SchemaError> {
        let (k, v) = split(self.encoding, payload, key)?;
        Ok(KeyValue {
            key: self.key.decode_message(k, None)?,
            value: self.value.decode_message(v, None)?,
        })
    }
}

/// A schema's own decoding as a [`Decoder`].
fn own_decoder<S: Schema>(schema: &Arc<S>) -> Arc<dyn Decoder<S::Value>> {
    Arc::new(Own(Arc::clone(schema)))
}

struct Own<S>(S);

impl<S: Schema> Decoder<S::Value> for Own<S> {
    fn decode_message(&self, payload: &[u8], _key: Option<&[u8]>) -> Result<S::Value, SchemaError> {
        self.0.decode(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitive;

    #[test]
    fn inline_payload_and_info_are_javas() {
        let s = KeyValueSchema::new(
            primitive::<String>(),
            primitive::<i32>(),
            KeyValueEncoding::Inline,
        );
        let b = s.encode(&KeyValue::new("k".to_string(), 7)).unwrap();
        assert_eq!(&b[..], &[0, 0, 0, 1, b'k', 0, 0, 0, 4, 0, 0, 0, 7]);
        assert_eq!(s.decode(&b).unwrap(), KeyValue::new("k".to_string(), 7));
        let info = s.info();
        assert_eq!(
            (info.kind, info.name.as_str()),
            (SchemaType::KeyValue, "KeyValue")
        );
        assert_eq!(&info.definition[..], &[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(info.property("key.schema.type"), Some("STRING"));
        assert_eq!(info.property("value.schema.type"), Some("INT32"));
        assert_eq!(info.property("value.schema.properties"), Some("{}"));
        assert_eq!(info.property("kv.encoding.type"), Some("INLINE"));
        let (k, v) = split_info(info).unwrap();
        assert_eq!((k.kind, v.kind), (SchemaType::String, SchemaType::Int32));
    }

    #[test]
    fn separated_puts_the_key_aside() {
        let s = KeyValueSchema::new(
            primitive::<String>(),
            primitive::<i64>(),
            KeyValueEncoding::Separated,
        );
        let (payload, key) = s
            .encode_message(&KeyValue::new("id".to_string(), 1))
            .unwrap();
        assert_eq!(&payload[..], &1i64.to_be_bytes());
        assert_eq!(key.as_deref(), Some(&b"id"[..]));
        assert_eq!(
            s.decode_message(&payload, Some(b"id")).unwrap(),
            KeyValue::new("id".to_string(), 1)
        );
        assert!(s.decode_message(&payload, None).is_err());
        assert_eq!(s.info().property("kv.encoding.type"), Some("SEPARATED"));
    }

    #[test]
    fn malformed_payloads_are_typed_errors() {
        let s = KeyValueSchema::new(
            primitive::<Bytes>(),
            primitive::<Bytes>(),
            KeyValueEncoding::Inline,
        );
        for bad in [
            &[0u8, 0][..],
            &[0, 0, 0, 9, 1],
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        ] {
            assert!(
                matches!(s.decode(bad), Err(SchemaError::KeyValue(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn properties_are_json_objects() {
        assert_eq!(properties_json(&[]), "{}");
        assert_eq!(
            properties_json(&[("a".into(), "x\"y".into())]),
            r#"{"a":"x\"y"}"#
        );
    }
}
