//! `produce -vs/--value-schema`, `-ks/--key-schema`, `-kvet/--key-value-encoding-type`: the schema a
//! producer declares, in the spellings of Apache's `pulsar-client produce` (`bytes`, `string`,
//! `json:<definition>`, `avro:<definition>`), and each message turned into the schema's payload:
//! UTF-8 text for `string`, one JSON document for `json`, a JSON document written as Avro binary
//! for `avro`, and for key-value schemas the key (`-kvk`) and the value encoded each with its
//! schema, INLINE in the payload or SEPARATED in the message key.

use bytes::Bytes;
use pulsar_blocking::core::SchemaInfo;
use pulsar_blocking::schema::{
    encode_inline, key_value_info, AvroSchema, KeyValueEncoding, Schema,
};

use crate::error::CliError;

/// What `-vs` and `-ks` accept, for error messages.
const SUPPORTED: &str = "bytes, string, json:<definition>, avro:<definition>";

/// One side's schema: how a message's text becomes that side's bytes.
#[derive(Debug, Clone)]
pub enum Part {
    /// Raw bytes (no schema).
    Bytes,
    /// UTF-8 text.
    String,
    /// One JSON document, sent as is.
    Json(SchemaInfo),
    /// One JSON document, written as Avro binary with the definition.
    Avro(AvroSchema<serde_json::Value>),
}

impl Part {
    /// The declared schema.
    fn info(&self) -> SchemaInfo {
        match self {
            Part::Bytes => SchemaInfo::bytes(),
            Part::String => SchemaInfo::string(),
            Part::Json(info) => info.clone(),
            Part::Avro(avro) => avro.info().clone(),
        }
    }

    /// The bytes of `data` for this schema, or why it does not fit.
    fn encode(&self, data: &Bytes) -> Result<Bytes, String> {
        match self {
            Part::Bytes => Ok(data.clone()),
            Part::String => std::str::from_utf8(data)
                .map(|_| data.clone())
                .map_err(|e| format!("is not UTF-8 ({e}), which the string schema requires")),
            Part::Json(_) => serde_json::from_slice::<serde_json::Value>(data)
                .map(|_| data.clone())
                .map_err(|e| format!("is not JSON ({e}), which the json schema requires")),
            Part::Avro(avro) => {
                let json: serde_json::Value = serde_json::from_slice(data).map_err(|e| {
                    format!("is not JSON ({e}); the avro schema takes records as JSON")
                })?;
                avro.encode(&json)
                    .map_err(|e| format!("does not fit the avro schema: {e}"))
            }
        }
    }
}

/// The schema of `produce`: the value's, and the key's for a key-value schema.
#[derive(Debug, Clone)]
pub struct ProduceSchema {
    value: Part,
    key: Option<(Part, KeyValueEncoding)>,
}

/// One message to send: the payload and, for SEPARATED key-values, the key bytes.
pub type Encoded = (Bytes, Option<Bytes>);

impl ProduceSchema {
    /// What the producer declares.
    pub fn info(&self) -> SchemaInfo {
        match &self.key {
            None => self.value.info(),
            Some((key, encoding)) => key_value_info(&key.info(), &self.value.info(), *encoding),
        }
    }

    /// Whether messages need a key-value key (`-kvk`).
    pub fn is_key_value(&self) -> bool {
        self.key.is_some()
    }

    /// Every payload encoded (with `key` for key-value schemas); `payloads` are numbered from 1
    /// in messages (`-m` values, then `-f` files, as sent).
    pub fn encode_all(
        &self,
        payloads: &[Bytes],
        key: Option<&str>,
    ) -> Result<Vec<Encoded>, CliError> {
        let key = match (&self.key, key) {
            (Some((part, _)), Some(k)) => Some(
                part.encode(&Bytes::copy_from_slice(k.as_bytes()))
                    .map_err(|e| CliError::Usage(format!("--key-value-key {e}")))?,
            ),
            (Some(_), None) => {
                return Err(CliError::Usage(
                    "a key-value schema (--key-schema) needs the key: --key-value-key (-kvk)"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(CliError::Usage(
                    "--key-value-key (-kvk) belongs to key-value schemas (--key-schema)".into(),
                ))
            }
            (None, None) => None,
        };
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let value = self
                    .value
                    .encode(p)
                    .map_err(|e| CliError::Usage(format!("message {} {e}", i + 1)))?;
                Ok(match (&self.key, &key) {
                    (Some((_, KeyValueEncoding::Separated)), Some(k)) => (value, Some(k.clone())),
                    (Some(_), Some(k)) => (encode_inline(k, &value), None),
                    _ => (value, None),
                })
            })
            .collect()
    }
}

/// The schema named by `-vs`, `-ks` and `-kvet` (INLINE unless `separated`).
pub fn value_schema(
    value: &str,
    key_schema: Option<&str>,
    key_value_encoding: Option<&str>,
) -> Result<ProduceSchema, CliError> {
    let value = parse(value, "--value-schema")?;
    let encoding = match key_value_encoding.map(str::to_ascii_lowercase).as_deref() {
        None | Some("inline") => KeyValueEncoding::Inline,
        Some("separated") => KeyValueEncoding::Separated,
        Some(other) => {
            return Err(CliError::Usage(format!(
                "--key-value-encoding-type {other}: expected inline or separated"
            )))
        }
    };
    let key = match key_schema {
        Some(k) => Some((parse(k, "--key-schema")?, encoding)),
        None if key_value_encoding.is_some() => {
            return Err(CliError::Usage(
                "--key-value-encoding-type needs a key-value schema: give --key-schema (-ks)"
                    .into(),
            ))
        }
        None => None,
    };
    Ok(ProduceSchema { value, key })
}

/// One schema spelling: `bytes`, `string`, or `json:` / `avro:` followed by the Avro-style record
/// definition the broker stores (as pulsar-client takes it), for example
/// `json:{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}`. `flag` names the
/// option in errors.
pub fn parse(value: &str, flag: &str) -> Result<Part, CliError> {
    let (kind, definition) = match value.split_once(':') {
        Some((kind, definition)) => (kind, Some(definition)),
        None => (value, None),
    };
    match (kind.trim().to_ascii_lowercase().as_str(), definition) {
        ("bytes", None) => Ok(Part::Bytes),
        ("string", None) => Ok(Part::String),
        ("json", Some(definition)) => {
            record(definition, flag, "json")?;
            Ok(Part::Json(SchemaInfo::json(definition)))
        }
        ("avro", Some(definition)) => {
            record(definition, flag, "avro")?;
            AvroSchema::new(definition)
                .map(Part::Avro)
                .map_err(|e| CliError::Usage(format!("{flag} avro:<definition>: {e}")))
        }
        (kind @ ("json" | "avro"), None) => Err(CliError::Usage(format!(
            "{flag} {kind} needs the record definition the broker stores: \
             {kind}:{{\"type\":\"record\",\"name\":\"...\",\"fields\":[...]}}"
        ))),
        ("bytes" | "string", Some(_)) => Err(CliError::Usage(format!(
            "{flag} {value}: {kind} takes no definition"
        ))),
        (
            "protobuf" | "protobuf_native" | "protobuf-native" | "key_value" | "key-value"
            | "keyvalue",
            _,
        ) => Err(CliError::Usage(format!(
            "{flag} {kind}: not supported by the command line (supported: {SUPPORTED}; key-value \
             schemas: --key-schema with --value-schema)"
        ))),
        _ => Err(CliError::Usage(format!(
            "{flag} {value:?}: unknown schema (supported: {SUPPORTED})"
        ))),
    }
}

/// Checks that a definition is a JSON object (the broker would refuse anything else with a less
/// direct message).
fn record(definition: &str, flag: &str, kind: &str) -> Result<(), CliError> {
    match serde_json::from_str::<serde_json::Value>(definition) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(CliError::Usage(format!(
            "{flag} {kind}:<definition>: the definition must be a JSON object \
             ({{\"type\":\"record\",...}})"
        ))),
        Err(e) => Err(CliError::Usage(format!(
            "{flag} {kind}:<definition>: the definition is not JSON: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulsar_blocking::core::SchemaType;

    const DEF: &str = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"}]}"#;

    fn usage<T: std::fmt::Debug>(r: Result<T, CliError>) -> String {
        match r {
            Err(CliError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    fn schema(vs: &str) -> ProduceSchema {
        value_schema(vs, None, None).unwrap()
    }

    #[test]
    fn pulsar_client_spellings() {
        assert_eq!(schema("bytes").info().kind, SchemaType::Bytes);
        assert_eq!(schema("string").info().kind, SchemaType::String);
        assert_eq!(schema("STRING").info().kind, SchemaType::String);
        let json = schema(&format!("json:{DEF}")).info();
        assert_eq!(json.kind, SchemaType::Json);
        assert_eq!(&json.definition[..], DEF.as_bytes());
        let avro = schema(&format!("avro:{DEF}")).info();
        assert_eq!(
            (avro.kind, &avro.definition[..]),
            (SchemaType::Avro, DEF.as_bytes())
        );
        let kv = value_schema(&format!("avro:{DEF}"), Some("string"), Some("SEPARATED")).unwrap();
        let info = kv.info();
        assert_eq!(info.kind, SchemaType::KeyValue);
        assert_eq!(info.property("kv.encoding.type"), Some("SEPARATED"));
        assert_eq!(info.property("key.schema.type"), Some("STRING"));
        assert_eq!(info.property("value.schema.type"), Some("AVRO"));
    }

    #[test]
    fn unsupported_and_malformed_schemas_are_usage_errors() {
        for kind in ["protobuf", "key_value"] {
            let m = usage(parse(kind, "-vs"));
            assert!(m.contains("not supported"), "{kind}: {m}");
        }
        assert!(usage(parse("int32", "-vs")).contains("unknown schema"));
        assert!(usage(parse("json", "-vs")).contains("needs the record definition"));
        assert!(usage(parse("avro", "-vs")).contains("needs the record definition"));
        assert!(usage(parse("json:{nope", "-vs")).contains("not JSON"));
        assert!(usage(parse("json:[1]", "-vs")).contains("JSON object"));
        assert!(usage(parse("avro:{\"type\":\"nope\"}", "-vs")).contains("avro"));
        assert!(usage(parse("string:x", "-vs")).contains("takes no definition"));
        let m = usage(value_schema("string", None, Some("separated")));
        assert!(m.contains("needs a key-value schema"), "{m}");
        let m = usage(value_schema("string", Some("string"), Some("sideways")));
        assert!(m.contains("inline or separated"), "{m}");
    }

    #[test]
    fn payloads_are_encoded_for_the_schema() {
        let json = schema(&format!("json:{DEF}"));
        let ok = [Bytes::from_static(br#"{"id":1}"#)];
        assert_eq!(
            json.encode_all(&ok, None).unwrap(),
            vec![(ok[0].clone(), None)]
        );
        let bad = [ok[0].clone(), Bytes::from_static(b"plain")];
        let m = usage(json.encode_all(&bad, None));
        assert!(m.starts_with("message 2 is not JSON"), "{m}");
        let binary = [Bytes::from_static(&[0xff, 0xfe])];
        assert!(schema("string").encode_all(&binary, None).is_err());
        assert!(schema("bytes").encode_all(&binary, None).is_ok());
        let avro = schema(&format!("avro:{DEF}"));
        assert_eq!(
            avro.encode_all(&ok, None).unwrap(),
            vec![(Bytes::from_static(&[2]), None)],
            "zig-zag 1"
        );
        let m = usage(avro.encode_all(&[Bytes::from_static(br#"{"x":1}"#)], None));
        assert!(m.contains("does not fit the avro schema"), "{m}");
    }

    #[test]
    fn key_values_take_the_key_from_kvk() {
        let inline = value_schema("string", Some("string"), None).unwrap();
        let v = [Bytes::from_static(b"v")];
        assert_eq!(
            inline.encode_all(&v, Some("k")).unwrap(),
            vec![(
                Bytes::from_static(&[0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v']),
                None
            )]
        );
        let separated = value_schema("string", Some("string"), Some("separated")).unwrap();
        assert_eq!(
            separated.encode_all(&v, Some("k")).unwrap(),
            vec![(v[0].clone(), Some(Bytes::from_static(b"k")))]
        );
        assert!(usage(inline.encode_all(&v, None)).contains("-kvk"));
        assert!(usage(schema("string").encode_all(&v, Some("k"))).contains("key-value"));
    }
}
