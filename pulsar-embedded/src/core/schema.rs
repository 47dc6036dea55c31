//! The schema registry: one list of versions per topic (partitions share their topic's), kept in
//! the store so it outlives broker crashes. A producer's schema is registered when new; a kind
//! different from the registered ones is refused with `IncompatibleSchema` (the real broker's
//! default refuses a change of type), a new definition of the same kind is a new version. A
//! consumer's schema must be of a registered kind (or AUTO_CONSUME; on a topic without schema it
//! is registered). GET_SCHEMA answers a version or the latest.

use bytes::Bytes;
use pulsar_proto::pb;

use super::{normalize_topic, Cluster, ConnId};

/// Protocol `Schema.Type` numbers that declare nothing to register.
const NONE: i32 = 0;
const AUTO_CONSUME: i32 = 21;

/// The registry's name of a topic: partitions share their topic's schema.
fn schema_topic(topic: &str) -> &str {
    match topic.rfind("-partition-") {
        Some(i) if topic[i + 11..].parse::<u32>().is_ok() => &topic[..i],
        _ => topic,
    }
}

/// The wire form of version `n`.
pub(crate) fn version(n: usize) -> Bytes {
    Bytes::copy_from_slice(&(n as u64).to_be_bytes())
}

impl Cluster {
    /// The version of a producer's `schema` on `topic`, registered when new; `Err` with the
    /// broker's message when its kind is not the topic's.
    pub(crate) fn producer_schema(
        &mut self,
        topic: &str,
        schema: Option<&pb::Schema>,
    ) -> Result<Option<Bytes>, String> {
        let Some(s) = schema.filter(|s| s.r#type != NONE) else {
            return Ok(None);
        };
        let versions = self
            .store
            .schemas
            .entry(schema_topic(topic).to_owned())
            .or_default();
        if let Some(n) = versions
            .iter()
            .position(|(t, d)| *t == s.r#type && d[..] == s.schema_data[..])
        {
            return Ok(Some(version(n)));
        }
        if let Some((t, _)) = versions.iter().find(|(t, _)| *t != s.r#type) {
            return Err(format!(
                "Incompatible schema: exists schema type {t}, new schema type {}",
                s.r#type
            ));
        }
        versions.push((s.r#type, s.schema_data.to_vec()));
        let n = versions.len() - 1;
        self.note(format!(
            "registers schema version {n} (type {}) of {topic}",
            s.r#type
        ));
        Ok(Some(version(n)))
    }

    /// Whether a consumer's `schema` fits `topic`'s; `Err` with the broker's message when not.
    pub(crate) fn consumer_schema(
        &mut self,
        topic: &str,
        schema: Option<&pb::Schema>,
    ) -> Result<(), String> {
        match schema.filter(|s| s.r#type != NONE && s.r#type != AUTO_CONSUME) {
            None => Ok(()),
            Some(s) => {
                let known = self.store.schemas.get(schema_topic(topic));
                match known {
                    Some(v) if !v.is_empty() && !v.iter().any(|(t, _)| *t == s.r#type) => Err(
                        format!("Incompatible schema: consumer schema type {}", s.r#type),
                    ),
                    Some(v) if !v.is_empty() => Ok(()),
                    _ => self.producer_schema(topic, Some(s)).map(drop),
                }
            }
        }
    }

    /// GET_SCHEMA: the version asked for, or the latest; `TopicNotFound` when there is none.
    pub(crate) fn handle_get_schema(&mut self, conn: ConnId, c: &pb::CommandGetSchema) {
        let topic = normalize_topic(&c.topic);
        let versions = self.store.schemas.get(schema_topic(&topic));
        let wanted = match (&c.schema_version, versions) {
            (_, None) => None,
            (None, Some(v)) => v.len().checked_sub(1),
            (Some(b), Some(v)) => <[u8; 8]>::try_from(&b[..])
                .ok()
                .map(|b| u64::from_be_bytes(b) as usize)
                .filter(|n| *n < v.len()),
        };
        let answer = match wanted.and_then(|n| versions.map(|v| (n, v[n].clone()))) {
            Some((n, (kind, data))) => pb::CommandGetSchemaResponse {
                request_id: c.request_id,
                schema: Some(pb::Schema {
                    name: String::new(),
                    schema_data: Bytes::from(data),
                    r#type: kind,
                    properties: Vec::new(),
                }),
                schema_version: Some(version(n)),
                ..Default::default()
            },
            None => pb::CommandGetSchemaResponse {
                request_id: c.request_id,
                error_code: Some(pb::ServerError::TopicNotFound as i32),
                error_message: Some("Topic not found or no-schema".into()),
                ..Default::default()
            },
        };
        self.write(conn, answer.into());
    }
}
