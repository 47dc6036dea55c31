//! `produce -vs/--value-schema`: the schema a producer declares, in the spellings of Apache's
//! `pulsar-client produce` (`bytes`, `string`, `json:<definition>`), and the check that every
//! payload fits it. Kinds the client does not support yet (Avro, Protobuf, key-value) are refused
//! with a usage error rather than sent as bytes.

use bytes::Bytes;
use pulsar_blocking::core::producer::{SchemaInfo, SchemaType};

use crate::error::CliError;

/// What `-vs` accepts, for error messages.
const SUPPORTED: &str = "bytes, string, json:<definition>";

/// The value schema named by `-vs`, after checking the key-value flags (`-ks`, `-kvet`), which
/// need key-value schemas.
pub fn value_schema(
    value: &str,
    key_schema: Option<&str>,
    key_value_encoding: Option<&str>,
) -> Result<SchemaInfo, CliError> {
    if let Some(encoding) = key_value_encoding {
        return Err(CliError::Usage(format!(
            "--key-value-encoding-type {encoding}: key-value schemas are not supported yet"
        )));
    }
    if let Some(key) = key_schema {
        return Err(CliError::Usage(format!(
            "--key-schema {key}: key schemas belong to key-value schemas \
             (--key-value-encoding-type), which are not supported yet"
        )));
    }
    parse(value)
}

/// One schema spelling: `bytes`, `string`, or `json:` followed by the Avro-style record
/// definition the broker stores (as pulsar-client takes it), for example
/// `json:{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}`.
pub fn parse(value: &str) -> Result<SchemaInfo, CliError> {
    let (kind, definition) = match value.split_once(':') {
        Some((kind, definition)) => (kind, Some(definition)),
        None => (value, None),
    };
    match (kind.trim().to_ascii_lowercase().as_str(), definition) {
        ("bytes", None) => Ok(SchemaInfo::bytes()),
        ("string", None) => Ok(SchemaInfo::string()),
        ("json", Some(definition)) => json(definition),
        ("json", None) => Err(CliError::Usage(
            "--value-schema json needs the record definition the broker stores: \
             json:{\"type\":\"record\",\"name\":\"...\",\"fields\":[...]}"
                .into(),
        )),
        ("bytes" | "string", Some(_)) => Err(CliError::Usage(format!(
            "--value-schema {value}: {kind} takes no definition"
        ))),
        (
            "avro" | "protobuf" | "protobuf_native" | "protobuf-native" | "key_value" | "key-value"
            | "keyvalue",
            _,
        ) => Err(CliError::Usage(format!(
            "--value-schema {kind}: {kind} schemas are not supported yet (supported: {SUPPORTED})"
        ))),
        _ => Err(CliError::Usage(format!(
            "--value-schema {value:?}: unknown schema (supported: {SUPPORTED})"
        ))),
    }
}

/// A JSON schema whose definition is checked to be a JSON object first (the broker would refuse
/// anything else with a less direct message).
fn json(definition: &str) -> Result<SchemaInfo, CliError> {
    match serde_json::from_str::<serde_json::Value>(definition) {
        Ok(serde_json::Value::Object(_)) => Ok(SchemaInfo::json(definition)),
        Ok(_) => Err(CliError::Usage(
            "--value-schema json:<definition>: the definition must be a JSON object \
             ({\"type\":\"record\",...})"
                .into(),
        )),
        Err(e) => Err(CliError::Usage(format!(
            "--value-schema json:<definition>: the definition is not JSON: {e}"
        ))),
    }
}

/// Checks that every payload fits `schema`: UTF-8 for `string`, one JSON document for `json`.
/// `payloads` are numbered from 1 in messages (`-m` values, then `-f` files, as sent).
pub fn check_payloads(schema: &SchemaInfo, payloads: &[Bytes]) -> Result<(), CliError> {
    for (i, payload) in payloads.iter().enumerate() {
        let problem = match schema.kind {
            SchemaType::String => std::str::from_utf8(payload)
                .err()
                .map(|e| format!("is not UTF-8 ({e}), which the string schema requires")),
            SchemaType::Json => serde_json::from_slice::<serde_json::Value>(payload)
                .err()
                .map(|e| format!("is not JSON ({e}), which the json schema requires")),
            _ => None,
        };
        if let Some(problem) = problem {
            return Err(CliError::Usage(format!("message {} {problem}", i + 1)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(r: Result<SchemaInfo, CliError>) -> String {
        match r {
            Err(CliError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn pulsar_client_spellings() {
        assert_eq!(parse("bytes").unwrap().kind, SchemaType::Bytes);
        assert_eq!(parse("string").unwrap().kind, SchemaType::String);
        assert_eq!(parse("STRING").unwrap().kind, SchemaType::String);
        let def = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"}]}"#;
        let json = parse(&format!("json:{def}")).unwrap();
        assert_eq!(json.kind, SchemaType::Json);
        assert_eq!(&json.definition[..], def.as_bytes());
    }

    #[test]
    fn unsupported_and_malformed_schemas_are_usage_errors() {
        for kind in ["avro", "avro:{}", "protobuf", "key_value"] {
            let m = usage(parse(kind));
            assert!(m.contains("not supported yet"), "{kind}: {m}");
        }
        assert!(usage(parse("int32")).contains("unknown schema"));
        assert!(usage(parse("json")).contains("needs the record definition"));
        assert!(usage(parse("json:{nope")).contains("not JSON"));
        assert!(usage(parse("json:[1]")).contains("JSON object"));
        assert!(usage(parse("string:x")).contains("takes no definition"));
        let m = usage(value_schema("string", None, Some("separated")));
        assert!(m.contains("not supported yet"), "{m}");
        let m = usage(value_schema("string", Some("string"), None));
        assert!(m.contains("not supported yet"), "{m}");
    }

    #[test]
    fn payloads_must_fit_the_schema() {
        let json = parse(r#"json:{"type":"record","name":"U","fields":[]}"#).unwrap();
        let ok = [Bytes::from_static(br#"{"id":1}"#)];
        assert!(check_payloads(&json, &ok).is_ok());
        let bad = [ok[0].clone(), Bytes::from_static(b"plain")];
        match check_payloads(&json, &bad) {
            Err(CliError::Usage(m)) => assert!(m.starts_with("message 2 is not JSON"), "{m}"),
            other => panic!("{other:?}"),
        }
        let binary = [Bytes::from_static(&[0xff, 0xfe])];
        assert!(check_payloads(&parse("string").unwrap(), &binary).is_err());
        assert!(check_payloads(&SchemaInfo::bytes(), &binary).is_ok());
    }
}
