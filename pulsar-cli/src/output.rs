//! Printing messages and results: the Java tool's text layout, or one JSON object per line.

use std::io::Write;

use base64::Engine as _;
use pulsar_blocking::core::{Message, MessageId};
use serde_json::{json, Map, Value};

use crate::args::Format;
use crate::error::CliError;

/// Separator line before each message in text format (as the Java tool prints).
pub const MESSAGE_BOUNDARY: &str = "----- got message -----";

/// Writes to stdout.
#[derive(Debug)]
pub struct Printer {
    format: Format,
    hex: bool,
}

impl Printer {
    /// A printer for `format`; `hex` dumps payloads in hex (text format).
    pub fn new(format: Format, hex: bool) -> Printer {
        Printer { format, hex }
    }

    /// Prints one received message; `value` is its value decoded with its schema
    /// (`--schema-type auto_consume`), or why it did not decode.
    pub fn message(
        &self,
        m: &Message,
        value: Option<&Result<Value, String>>,
    ) -> Result<(), CliError> {
        let line = match self.format {
            Format::Json => {
                let mut json = message_json(m);
                match (value, json.as_object_mut()) {
                    (Some(Ok(v)), Some(o)) => {
                        o.insert("value".into(), v.clone());
                    }
                    (Some(Err(e)), Some(o)) => {
                        o.insert("value_error".into(), Value::String(e.clone()));
                    }
                    _ => {}
                }
                json.to_string()
            }
            Format::Text => {
                let content = if let Some(v) = value {
                    match v {
                        Ok(v) => v.to_string(),
                        Err(e) => format!("<does not decode: {e}>"),
                    }
                } else if self.hex {
                    hex_dump(&m.payload)
                } else {
                    String::from_utf8_lossy(&m.payload).into_owned()
                };
                let key = m.key.as_deref().unwrap_or("null");
                let mut text = format!("{MESSAGE_BOUNDARY}\nkey:[{key}], ");
                if !m.properties.is_empty() {
                    let props: Vec<String> = m
                        .properties
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    text.push_str(&format!("properties:[{}], ", props.join(", ")));
                }
                text.push_str(&format!("content:{content}"));
                text
            }
        };
        out(&line)
    }

    /// Prints the receipt of one produced message (JSON format only).
    pub fn receipt(&self, topic: &str, id: &MessageId) -> Result<(), CliError> {
        if self.format == Format::Json {
            out(&json!({ "message_id": id.to_string(), "topic": topic }).to_string())?;
        }
        Ok(())
    }

    /// Prints a closing summary line on stderr (stdout carries only data).
    pub fn summary(&self, line: &str) {
        eprintln!("{line}");
    }
}

/// Writes one line to stdout.
pub fn out(line: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::io("writing to stdout", e))
}

/// The JSON form of a message: ids, metadata, and the payload as UTF-8 text or base64.
pub fn message_json(m: &Message) -> Value {
    let (payload, encoding) = match std::str::from_utf8(&m.payload) {
        Ok(text) => (text.to_string(), "utf8"),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(&m.payload),
            "base64",
        ),
    };
    let properties: Map<String, Value> = m
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "message_id": m.id.to_string(),
        "topic": m.topic.to_string(),
        "key": m.key,
        "properties": properties,
        "publish_time": m.publish_time,
        "event_time": m.event_time,
        "redelivery_count": m.redelivery_count,
        "producer_name": m.producer_name.to_string(),
        "sequence_id": m.sequence_id,
        "payload": payload,
        "payload_encoding": encoding,
    })
}

/// A hex dump: offset, 16 bytes in hex, and their printable characters.
pub fn hex_dump(data: &[u8]) -> String {
    let mut lines = Vec::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        lines.push(format!("{:08x}  {:<47}  {text}", i * 16, hex.join(" ")));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_dump_layout() {
        let dump = hex_dump(b"hello\x00world, this is long");
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].starts_with("00000000  68 65 6c 6c 6f 00 77"),
            "{}",
            lines[0]
        );
        assert!(lines[0].ends_with("hello.world, thi"), "{}", lines[0]);
        assert!(lines[1].starts_with("00000010  73 20"), "{}", lines[1]);
    }
}
