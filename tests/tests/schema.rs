//! Schemas against the real broker: typed producers and consumers of every kind, registration and
//! versions, evolution (a v1 and a v2 producer read by AUTO_CONSUME and a typed v2 consumer), the
//! typed IncompatibleSchema refusal, the compatibility strategies set through the admin REST API,
//! AUTO_PRODUCE_BYTES, and an undecodable message that does not end the consumer.

use std::time::Duration;

use pulsar_blocking::schema::{
    primitive, AutoConsume, AvroSchema, GenericValue, JsonSchema, KeyValue, KeyValueEncoding,
    KeyValueSchema, LocalDateTime, Schema, SchemaError, SchemaType,
};
use pulsar_blocking::{Client, Error, InitialPosition, MessageId, OutgoingMessage};
use pulsar_core::SchemaVersion;
use pulsar_tests::support::{admin, broker, unique_topic};
use serde::{Deserialize, Serialize};

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(30);

const USER_V1: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null}]}"#;
const USER_V2: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null},{"name":"age","type":"int","default":-1}]}"#;
/// v1 plus a field without a default: not BACKWARD compatible (a v3 reader cannot read v1 data).
const USER_V3_NO_DEFAULT: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null},{"name":"email","type":"string"}]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserV1 {
    id: i64,
    name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserV2 {
    id: i64,
    name: Option<String>,
    #[serde(default = "unknown_age")]
    age: i32,
}

fn unknown_age() -> i32 {
    -1
}

fn client() -> R<Client> {
    Ok(Client::builder(broker().service_url.as_str()).build()?)
}

/// A consumer builder from the earliest message with an exclusive subscription `sub`.
fn earliest(client: &Client, topic: &str, sub: &str) -> pulsar_blocking::ConsumerBuilder {
    client
        .consumer(topic)
        .subscription(sub)
        .initial_position(InitialPosition::Earliest)
}

/// Sends `values` with `schema` and reads them back with the same schema.
fn round_trip<S>(client: &Client, schema: impl Fn() -> S, values: &[S::Value]) -> R
where
    S: Schema,
    S::Value: PartialEq + std::fmt::Debug,
{
    let kind = schema().info().kind;
    let topic = unique_topic(&format!("schema-{}", kind.java_name().to_lowercase()));
    let producer = client.producer(&topic).schema(schema()).create()?;
    for v in values {
        producer.send(v)?;
    }
    let consumer = earliest(client, &topic, "s").schema(schema()).subscribe()?;
    for v in values {
        let m = consumer.receive_timeout(TIMEOUT)?.ok_or("no message")?;
        assert_eq!(m.value()?, v, "{kind}");
        assert!(
            m.message.schema_version.is_some() || kind == SchemaType::Bytes,
            "{kind}: a schema version on the message"
        );
        consumer.ack(&m)?;
    }
    let registered = client.get_schema(&topic, None)?;
    match kind {
        SchemaType::Bytes => assert!(registered.is_none(), "bytes registers nothing"),
        _ => {
            let registered = registered.ok_or("registered")?;
            assert_eq!(registered.info.kind, kind);
            assert_eq!(registered.version.number(), Some(0));
        }
    }
    Ok(())
}

#[test]
fn every_primitive_kind_round_trips_and_registers_its_kind() -> R {
    let c = client()?;
    round_trip(
        &c,
        primitive::<String>,
        &["héllo".to_string(), String::new()],
    )?;
    round_trip(&c, primitive::<bool>, &[true, false])?;
    round_trip(&c, primitive::<i8>, &[-128, 7])?;
    round_trip(&c, primitive::<i16>, &[-3, 300])?;
    round_trip(&c, primitive::<i32>, &[i32::MIN, 42])?;
    round_trip(&c, primitive::<i64>, &[i64::MAX, -1])?;
    round_trip(&c, primitive::<f32>, &[1.5, -0.25])?;
    round_trip(&c, primitive::<f64>, &[std::f64::consts::PI])?;
    round_trip(
        &c,
        primitive::<pulsar_blocking::schema::Date>,
        &[pulsar_blocking::schema::Date(1_700_000_000_000)],
    )?;
    round_trip(
        &c,
        primitive::<LocalDateTime>,
        &[LocalDateTime {
            epoch_day: 19_000,
            nano_of_day: 123,
        }],
    )?;
    round_trip(
        &c,
        primitive::<bytes::Bytes>,
        &[bytes::Bytes::from_static(b"\0\x01")],
    )?;
    Ok(())
}

#[test]
fn json_avro_and_key_values_round_trip() -> R {
    let c = client()?;
    let users = [
        UserV1 {
            id: 1,
            name: Some("ada".into()),
        },
        UserV1 { id: 2, name: None },
    ];
    round_trip(&c, || JsonSchema::<UserV1>::new(USER_V1), &users)?;
    round_trip(
        &c,
        || AvroSchema::<UserV1>::new(USER_V1).expect("definition"),
        &users,
    )?;
    for encoding in [KeyValueEncoding::Inline, KeyValueEncoding::Separated] {
        round_trip(
            &c,
            || {
                KeyValueSchema::new(
                    primitive::<String>(),
                    AvroSchema::<UserV1>::new(USER_V1).expect("definition"),
                    encoding,
                )
            },
            &[KeyValue::new("k1".to_string(), users[0].clone())],
        )?;
    }
    Ok(())
}

#[test]
fn separated_key_values_put_the_key_in_the_message_key() -> R {
    let c = client()?;
    let topic = unique_topic("schema-kv-separated");
    let schema = || {
        KeyValueSchema::new(
            primitive::<String>(),
            primitive::<i32>(),
            KeyValueEncoding::Separated,
        )
    };
    let p = c.producer(&topic).schema(schema()).create()?;
    p.send(&KeyValue::new("route-me".into(), 5))?;
    let raw = earliest(&c, &topic, "raw").subscribe()?;
    let m = raw.receive_timeout(TIMEOUT)?.ok_or("no message")?;
    assert!(m.key_is_base64);
    assert_eq!(m.key_bytes().as_deref(), Some(&b"route-me"[..]));
    assert_eq!(&m.payload[..], &5i32.to_be_bytes());
    Ok(())
}

#[test]
fn evolution_v1_then_v2_is_read_by_auto_consume_and_a_typed_v2_consumer() -> R {
    let c = client()?;
    let topic = unique_topic("schema-evolution");
    let v1 = c
        .producer(&topic)
        .schema(AvroSchema::<UserV1>::new(USER_V1)?)
        .create()?;
    v1.send(&UserV1 {
        id: 1,
        name: Some("old".into()),
    })?;
    v1.close()?;
    let v2 = c
        .producer(&topic)
        .schema(AvroSchema::<UserV2>::new(USER_V2)?)
        .create()?;
    v2.send(&UserV2 {
        id: 2,
        name: None,
        age: 30,
    })?;
    let versions: Vec<Option<i64>> = [0, 1]
        .iter()
        .map(|n| {
            c.get_schema(&topic, Some(SchemaVersion::from_number(*n)))
                .map(|s| s.map(|s| s.version.number().unwrap_or(-9)))
        })
        .collect::<Result<_, _>>()?;
    assert_eq!(versions, vec![Some(0), Some(1)], "two versions registered");

    let typed = earliest(&c, &topic, "typed-v2")
        .schema(AvroSchema::<UserV2>::new(USER_V2)?)
        .subscribe()?;
    let a = typed.receive_timeout(TIMEOUT)?.ok_or("no v1 message")?;
    let b = typed.receive_timeout(TIMEOUT)?.ok_or("no v2 message")?;
    assert_eq!(
        a.value()?,
        &UserV2 {
            id: 1,
            name: Some("old".into()),
            age: -1
        },
        "the v1 message read through schema resolution, age defaulted"
    );
    assert_eq!(
        b.value()?,
        &UserV2 {
            id: 2,
            name: None,
            age: 30
        }
    );
    assert_ne!(a.message.schema_version, b.message.schema_version);

    let auto = earliest(&c, &topic, "auto")
        .schema(AutoConsume::new())
        .subscribe()?;
    let a = auto.receive_timeout(TIMEOUT)?.ok_or("no v1 message")?;
    let b = auto.receive_timeout(TIMEOUT)?.ok_or("no v2 message")?;
    assert_eq!(
        a.value()?.to_json(),
        serde_json::json!({"id": 1, "name": "old"}),
        "AUTO_CONSUME reads v1 with v1's schema"
    );
    assert_eq!(
        b.value()?.to_json(),
        serde_json::json!({"id": 2, "name": null, "age": 30})
    );
    Ok(())
}

#[test]
fn an_incompatible_schema_is_refused_with_a_typed_error_naming_the_reason() -> R {
    let c = client()?;
    let topic = unique_topic("schema-incompatible");
    let _strings = c.producer(&topic).schema(primitive::<String>()).create()?;
    let refused = c.producer(&topic).schema(primitive::<i64>()).create();
    let Err(Error::Client(e @ pulsar_core::Error::IncompatibleSchema { .. })) = refused else {
        return Err(format!("expected IncompatibleSchema, got {refused:?}").into());
    };
    let reason = e.broker_reason().unwrap_or_default();
    assert!(reason.contains("Incompatible schema"), "{reason}");
    assert!(!e.is_retriable());

    let consumer = earliest(&c, &topic, "s")
        .schema(JsonSchema::<UserV1>::new(USER_V1))
        .subscribe();
    assert!(
        matches!(
            consumer,
            Err(Error::Client(pulsar_core::Error::IncompatibleSchema { .. }))
        ),
        "{consumer:?}"
    );
    Ok(())
}

/// A namespace of its own (the strategy is a namespace policy; public/default is shared by every
/// test) with `strategy`; returns a topic in it.
fn topic_with_strategy(strategy: &str) -> R<String> {
    let admin = admin()?;
    let ns = format!(
        "schema-{}-{}",
        strategy.to_lowercase().replace('_', "-"),
        unique_topic("x").rsplit('/').next().unwrap_or_default()
    );
    admin.call("PUT", &format!("/admin/v2/namespaces/public/{ns}"), None)?;
    admin.call(
        "PUT",
        &format!("/admin/v2/namespaces/public/{ns}/schemaCompatibilityStrategy"),
        Some(&format!("\"{strategy}\"")),
    )?;
    let got = admin.get_json(&format!(
        "/admin/v2/namespaces/public/{ns}/schemaCompatibilityStrategy"
    ))?;
    assert_eq!(got, serde_json::json!(strategy));
    Ok(format!("persistent://public/{ns}/t"))
}

/// Whether a producer with the Avro `definition` is accepted on `topic`.
fn accepted(c: &Client, topic: &str, definition: &str) -> R<bool> {
    match c
        .producer(topic)
        .schema(AvroSchema::<serde_json::Value>::new(definition)?)
        .create()
    {
        Ok(p) => {
            p.close()?;
            Ok(true)
        }
        Err(Error::Client(pulsar_core::Error::IncompatibleSchema { .. })) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[test]
fn compatibility_strategies_set_through_the_admin_api_decide() -> R {
    let c = client()?;
    // (strategy, v2 adds a field with a default, v2 adds a field without one)
    let cases = [
        ("ALWAYS_INCOMPATIBLE", false, false),
        ("ALWAYS_COMPATIBLE", true, true),
        ("BACKWARD", true, false),
        ("FORWARD", true, true),
        ("FULL", true, false),
    ];
    for (strategy, with_default, without_default) in cases {
        let t = topic_with_strategy(strategy)?;
        assert!(accepted(&c, &t, USER_V1)?, "{strategy}: the first schema");
        assert!(
            accepted(&c, &t, USER_V1)?,
            "{strategy}: the same schema again"
        );
        assert_eq!(
            accepted(&c, &t, USER_V2)?,
            with_default,
            "{strategy}: a field added with a default"
        );
        let t = topic_with_strategy(strategy)?;
        assert!(accepted(&c, &t, USER_V1)?);
        assert_eq!(
            accepted(&c, &t, USER_V3_NO_DEFAULT)?,
            without_default,
            "{strategy}: a field added without a default"
        );
    }
    Ok(())
}

#[test]
fn get_or_create_schema_registers_a_new_version_or_finds_the_old_one() -> R {
    let c = client()?;
    let topic = unique_topic("schema-get-or-create");
    let p = c
        .producer(&topic)
        .schema(AvroSchema::<UserV1>::new(USER_V1)?)
        .create()?;
    let v1 = AvroSchema::<UserV1>::new(USER_V1)?;
    let v2 = AvroSchema::<UserV2>::new(USER_V2)?;
    assert_eq!(c.get_or_create_schema(&topic, v1.info())?.number(), Some(0));
    assert_eq!(c.get_or_create_schema(&topic, v2.info())?.number(), Some(1));
    assert_eq!(c.get_or_create_schema(&topic, v2.info())?.number(), Some(1));
    let refused = c.get_or_create_schema(&topic, primitive::<String>().info());
    assert!(
        matches!(
            refused,
            Err(Error::Client(pulsar_core::Error::IncompatibleSchema { .. }))
        ),
        "{refused:?}"
    );
    p.close()?;
    Ok(())
}

#[test]
fn auto_produce_bytes_checks_payloads_against_the_topics_schema() -> R {
    let c = client()?;
    let topic = unique_topic("schema-auto-produce");
    let typed = c
        .producer(&topic)
        .schema(JsonSchema::<UserV1>::new(USER_V1))
        .create()?;
    typed.send(&UserV1 { id: 1, name: None })?;
    let auto = c.producer(&topic).create_auto_produce_bytes()?;
    let declared = auto.topic_schema().ok_or("the topic's schema")?;
    assert_eq!(declared.info.kind, SchemaType::Json);
    auto.send(OutgoingMessage::new(&br#"{"id":2,"name":"x"}"#[..]))?;
    let bad = auto.send(OutgoingMessage::new(&b"{not json"[..]));
    assert!(
        matches!(bad, Err(Error::Schema(SchemaError::Json(_)))),
        "{bad:?}"
    );
    let consumer = earliest(&c, &topic, "s")
        .schema(JsonSchema::<UserV1>::new(USER_V1))
        .subscribe()?;
    let ids: Vec<i64> = (0..2)
        .map(|_| -> R<i64> {
            let m = consumer.receive_timeout(TIMEOUT)?.ok_or("no message")?;
            Ok(m.value()?.id)
        })
        .collect::<R<_>>()?;
    assert_eq!(ids, vec![1, 2]);
    assert!(
        consumer
            .receive_timeout(Duration::from_millis(500))?
            .is_none(),
        "the bad payload was not sent"
    );
    Ok(())
}

#[test]
fn an_undecodable_message_is_a_typed_error_and_the_consumer_goes_on() -> R {
    let c = client()?;
    let topic = unique_topic("schema-undecodable");
    let typed = c
        .producer(&topic)
        .schema(JsonSchema::<UserV1>::new(USER_V1))
        .create()?;
    typed.send(&UserV1 { id: 1, name: None })?;
    // a bytes producer on a schema'd topic (the broker does not enforce schemas by default)
    let raw = c.producer(&topic).create()?;
    let bad: MessageId = raw.send(OutgoingMessage::new(&b"{broken"[..]))?;
    typed.send(&UserV1 { id: 3, name: None })?;
    let consumer = earliest(&c, &topic, "s")
        .schema(JsonSchema::<UserV1>::new(USER_V1))
        .subscribe()?;
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = consumer.receive_timeout(TIMEOUT)?.ok_or("no message")?;
        got.push(m.value().map(|u| u.id));
        if m.id() == bad {
            assert!(matches!(m.value(), Err(SchemaError::Json(_))));
        }
        consumer.ack(&m)?;
    }
    assert!(
        matches!(&got[..], [Ok(1), Err(SchemaError::Json(_)), Ok(3)]),
        "{got:?}"
    );
    Ok(())
}

#[test]
fn auto_consume_reads_every_kind_as_generic_values() -> R {
    let c = client()?;
    let cases: Vec<(String, serde_json::Value)> = vec![
        {
            let t = unique_topic("schema-auto-int");
            c.producer(&t)
                .schema(primitive::<i32>())
                .create()?
                .send(&-5)?;
            (t, serde_json::json!(-5))
        },
        {
            let t = unique_topic("schema-auto-string");
            c.producer(&t)
                .schema(primitive::<String>())
                .create()?
                .send(&"hi".to_string())?;
            (t, serde_json::json!("hi"))
        },
        {
            let t = unique_topic("schema-auto-json");
            c.producer(&t)
                .schema(JsonSchema::<UserV1>::new(USER_V1))
                .create()?
                .send(&UserV1 {
                    id: 4,
                    name: Some("j".into()),
                })?;
            (t, serde_json::json!({"id": 4, "name": "j"}))
        },
        {
            let t = unique_topic("schema-auto-kv");
            c.producer(&t)
                .schema(KeyValueSchema::new(
                    primitive::<String>(),
                    AvroSchema::<UserV1>::new(USER_V1)?,
                    KeyValueEncoding::Separated,
                ))
                .create()?
                .send(&KeyValue::new("k".into(), UserV1 { id: 9, name: None }))?;
            (
                t,
                serde_json::json!({"key": "k", "value": {"id": 9, "name": null}}),
            )
        },
    ];
    for (topic, expected) in cases {
        let auto = earliest(&c, &topic, "auto")
            .schema(AutoConsume::new())
            .subscribe()?;
        let m = auto.receive_timeout(TIMEOUT)?.ok_or("no message")?;
        let value: &GenericValue = m.value()?;
        assert_eq!(value.to_json(), expected, "{topic}");
    }
    Ok(())
}

#[test]
fn a_typed_reader_decodes_from_a_position() -> R {
    let c = client()?;
    let topic = unique_topic("schema-reader");
    let p = c
        .producer(&topic)
        .schema(AvroSchema::<UserV1>::new(USER_V1)?)
        .create()?;
    let first = p.send(&UserV1 { id: 1, name: None })?;
    p.send(&UserV1 {
        id: 2,
        name: Some("b".into()),
    })?;
    let typed = c
        .reader(&topic)
        .start_message_id(first)
        .schema(AvroSchema::<UserV1>::new(USER_V1)?)
        .create()?;
    let m = typed.receive_timeout(TIMEOUT)?.ok_or("no message")?;
    assert_eq!(m.value()?.id, 2, "after the start id");
    let auto = c
        .reader(&topic)
        .start_message_id(MessageId::EARLIEST)
        .schema(AutoConsume::new())
        .create()?;
    let m = auto.receive_timeout(TIMEOUT)?.ok_or("no message")?;
    assert_eq!(
        m.value()?.to_json(),
        serde_json::json!({"id": 1, "name": null})
    );
    Ok(())
}
