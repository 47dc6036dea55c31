//! `consume/read --schema-type auto_consume`: each message decoded with the topic's schema of its
//! version (fetched from the registry once per topic and version) into JSON.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use pulsar_blocking::core::{Message, SchemaVersion};
use pulsar_blocking::schema::{generic_decoder, Decoder, GenericValue};
use pulsar_blocking::Client;
use serde_json::Value;

/// A version's decoder, or why there is none (kept too: the registry's answer will not change).
type Entry = Result<Arc<dyn Decoder<GenericValue>>, String>;

/// Decodes messages with the schema of their version.
pub struct AutoDecoder<'a> {
    client: &'a Client,
    decoders: RefCell<HashMap<(Arc<str>, Bytes), Entry>>,
}

impl std::fmt::Debug for AutoDecoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoDecoder").finish_non_exhaustive()
    }
}

impl<'a> AutoDecoder<'a> {
    /// A decoder fetching schemas through `client`.
    pub fn new(client: &'a Client) -> Self {
        AutoDecoder {
            client,
            decoders: RefCell::new(HashMap::new()),
        }
    }

    /// The message's value as JSON; `None` for a message written without a schema (printed as
    /// bytes); `Err` with the reason when it does not decode.
    pub fn decode(&self, m: &Message) -> Option<Result<Value, String>> {
        let version = m.schema_version.as_ref().filter(|v| !v.is_empty())?;
        let key = (Arc::clone(&m.topic), version.clone());
        let cached = self.decoders.borrow().get(&key).cloned();
        let decoder = match cached {
            Some(entry) => entry,
            None => {
                let entry = self.fetch(&m.topic, version);
                match &entry {
                    // a failed fetch is tried again with the next message
                    Err(e) if e.starts_with("fetching") => {}
                    _ => {
                        self.decoders.borrow_mut().insert(key, entry.clone());
                    }
                }
                entry
            }
        };
        let key_bytes = m.key_bytes();
        Some(decoder.and_then(|d| {
            d.decode_message(&m.payload, key_bytes.as_deref())
                .map(|v| v.to_json())
                .map_err(|e| e.to_string())
        }))
    }

    fn fetch(&self, topic: &str, version: &Bytes) -> Entry {
        let fetched = self
            .client
            .get_schema(topic, Some(SchemaVersion(version.clone())))
            .map_err(|e| format!("fetching the schema of version {version:?}: {e}"))?;
        let schema = fetched.ok_or_else(|| format!("schema version {version:?} not found"))?;
        generic_decoder(&schema.info).map_err(|e| e.to_string())
    }
}
