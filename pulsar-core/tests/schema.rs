//! Schemas in the core: the schema on PRODUCER and SUBSCRIBE, GET_SCHEMA and GET_OR_CREATE_SCHEMA
//! requests and their answers, the typed IncompatibleSchema error at creation, and the schema
//! version on received messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use pulsar_core::{
    ConsumerOptions, Error, Event, ProducerOptions, SchemaInfo, SchemaType, SchemaVersion,
    ServerErrorCode, VersionedSchema,
};
use pulsar_proto::pb::{self, base_command::Type};
use support::{Reply, Sim, SERVICE};

const REASON: &str =
    "org.apache.pulsar.broker.service.schema.exceptions.IncompatibleSchemaException: \
     Incompatible schema: exists schema type STRING, new schema type JSON caused by \
     org.apache.pulsar.broker.service.schema.exceptions.IncompatibleSchemaException: \
     Incompatible schema: exists schema type STRING, new schema type JSON";

fn incompatible(request_id: u64) -> Reply {
    Reply::Cmd(
        pb::CommandError {
            request_id,
            error: 18, // IncompatibleSchema
            message: REASON.into(),
        }
        .into(),
    )
}

#[test]
fn subscribe_declares_the_consumer_schema_and_bytes_declares_none() {
    let mut sim = Sim::new();
    let def = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"}]}"#;
    sim.subscribed(ConsumerOptions::new("plain"));
    sim.subscribed(ConsumerOptions::new("bytes").with_schema(SchemaInfo::bytes()));
    sim.subscribed(ConsumerOptions::new("avro").with_schema(SchemaInfo::avro(def)));
    sim.subscribed(ConsumerOptions::new("auto").with_schema(SchemaInfo::auto_consume()));
    let schemas: Vec<Option<(i32, Bytes)>> = sim
        .received_of(Type::Subscribe)
        .iter()
        .map(|s| {
            let s = s.command.subscribe.as_deref().unwrap();
            s.schema.as_ref().map(|s| (s.r#type, s.schema_data.clone()))
        })
        .collect();
    assert_eq!(
        schemas,
        vec![
            None,
            None,
            Some((4, Bytes::from_static(def.as_bytes()))),
            Some((21, Bytes::new())),
        ]
    );
}

#[test]
fn producer_declares_primitive_schemas_with_javas_names() {
    let mut sim = Sim::new();
    let p = sim
        .client
        .create_producer(
            sim.now,
            "t",
            ProducerOptions::default().with_schema(SchemaInfo::primitive(SchemaType::Int64)),
        )
        .unwrap();
    sim.run_until(
        Duration::from_secs(1),
        |e| matches!(e, Event::ProducerReady { producer, .. } if *producer == p),
    );
    let received = sim.received_of(Type::Producer);
    let schema = received[0]
        .command
        .producer
        .as_deref()
        .unwrap()
        .schema
        .clone()
        .unwrap();
    assert_eq!((schema.r#type, schema.name.as_str()), (9, "INT64"));
}

#[test]
fn an_incompatible_schema_fails_the_producer_with_a_typed_error_naming_the_reason() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let p = cmd.producer.as_deref()?;
        Some(vec![incompatible(p.request_id)])
    });
    let p = sim
        .client
        .create_producer(
            sim.now,
            "t",
            ProducerOptions::default().with_schema(SchemaInfo::json("{}")),
        )
        .unwrap();
    let e = sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerFailed { .. })
    });
    let Event::ProducerFailed {
        producer, error, ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(producer, p);
    assert_eq!(
        error,
        Error::IncompatibleSchema {
            message: REASON.into()
        }
    );
    assert!(!error.is_retriable());
    assert_eq!(
        error.server_code(),
        Some(ServerErrorCode::IncompatibleSchema)
    );
    assert_eq!(
        error.to_string(),
        "incompatible schema: Incompatible schema: exists schema type STRING, new schema type JSON"
    );
    assert_eq!(
        sim.received_of(Type::Producer).len(),
        1,
        "not retried: the answer cannot change"
    );
}

#[test]
fn an_incompatible_schema_fails_the_consumer_with_a_typed_error() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let s = cmd.subscribe.as_deref()?;
        Some(vec![incompatible(s.request_id)])
    });
    let c = sim
        .client
        .subscribe(
            sim.now,
            "t",
            ConsumerOptions::new("s").with_schema(SchemaInfo::string()),
        )
        .unwrap();
    let e = sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ConsumerFailed { .. })
    });
    let Event::ConsumerFailed {
        consumer, error, ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(consumer, c);
    assert!(
        matches!(&error, Error::IncompatibleSchema { message } if message == REASON),
        "{error:?}"
    );
    assert_eq!(sim.received_of(Type::Subscribe).len(), 1);
}

fn schema_response(request_id: u64, version: Option<&[u8]>) -> Reply {
    let def = r#"{"type":"record","name":"U","fields":[]}"#;
    Reply::Cmd(
        pb::CommandGetSchemaResponse {
            request_id,
            schema: Some(pb::Schema {
                name: "U".into(),
                schema_data: Bytes::from_static(def.as_bytes()),
                r#type: 4,
                properties: vec![pb::KeyValue {
                    key: "k".into(),
                    value: "v".into(),
                }],
            }),
            schema_version: version.map(Bytes::copy_from_slice),
            ..Default::default()
        }
        .into(),
    )
}

#[test]
fn get_schema_asks_the_registry_for_a_version_or_the_latest() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let g = cmd.get_schema.as_deref()?;
        if g.topic.ends_with("/none") {
            return Some(vec![Reply::Cmd(
                pb::CommandGetSchemaResponse {
                    request_id: g.request_id,
                    error_code: Some(11), // TopicNotFound
                    error_message: Some("Topic not found or no-schema".into()),
                    ..Default::default()
                }
                .into(),
            )]);
        }
        let version = g
            .schema_version
            .clone()
            .unwrap_or_else(|| Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 2]));
        Some(vec![schema_response(g.request_id, Some(&version))])
    });
    let latest = sim.client.get_schema(sim.now, "t", None).unwrap();
    let v1 = sim
        .client
        .get_schema(sim.now, "t", Some(SchemaVersion::from_number(1)))
        .unwrap();
    let none = sim.client.get_schema(sim.now, "none", None).unwrap();
    sim.run_until_idle();
    let events = sim.take_events();
    let fetched = |request, version: i64| Event::SchemaFetched {
        request,
        result: Ok(Some(VersionedSchema::new(
            SchemaInfo::new(
                SchemaType::Avro,
                "U",
                r#"{"type":"record","name":"U","fields":[]}"#,
            )
            .with_property("k", "v"),
            SchemaVersion::from_number(version),
        ))),
    };
    assert!(events.contains(&fetched(latest, 2)), "{events:?}");
    assert!(events.contains(&fetched(v1, 1)), "{events:?}");
    assert!(events.contains(&Event::SchemaFetched {
        request: none,
        result: Ok(None)
    }));
    let asked: Vec<(String, Option<Bytes>)> = sim
        .received_of(Type::GetSchema)
        .iter()
        .map(|r| {
            let g = r.command.get_schema.as_deref().unwrap();
            (g.topic.clone(), g.schema_version.clone())
        })
        .collect();
    assert_eq!(
        asked,
        vec![
            ("persistent://public/default/t".to_string(), None),
            (
                "persistent://public/default/t".to_string(),
                Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 1]))
            ),
            ("persistent://public/default/none".to_string(), None),
        ]
    );
}

#[test]
fn get_schema_refuses_an_unknown_schema_type() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let g = cmd.get_schema.as_deref()?;
        Some(vec![Reply::Cmd(
            pb::CommandGetSchemaResponse {
                request_id: g.request_id,
                schema: Some(pb::Schema {
                    r#type: 77,
                    ..Default::default()
                }),
                schema_version: Some(Bytes::from_static(&[0; 8])),
                ..Default::default()
            }
            .into(),
        )])
    });
    let r = sim.client.get_schema(sim.now, "t", None).unwrap();
    let e = sim.run_until(Duration::from_secs(1), |e| {
        matches!(e, Event::SchemaFetched { .. })
    });
    assert!(
        matches!(e, Event::SchemaFetched { request, result: Err(Error::Protocol(_)) } if request == r),
        "{e:?}"
    );
}

#[test]
fn get_or_create_schema_returns_the_version_or_the_typed_refusal() {
    let mut sim = Sim::new();
    sim.hook(SERVICE, |_, cmd| {
        let g = cmd.get_or_create_schema.as_deref()?;
        let answer = if g.schema.r#type == 1 {
            pb::CommandGetOrCreateSchemaResponse {
                request_id: g.request_id,
                schema_version: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 5])),
                ..Default::default()
            }
        } else {
            pb::CommandGetOrCreateSchemaResponse {
                request_id: g.request_id,
                error_code: Some(18),
                error_message: Some(REASON.into()),
                ..Default::default()
            }
        };
        Some(vec![Reply::Cmd(answer.into())])
    });
    let ok = sim
        .client
        .get_or_create_schema(sim.now, "t", &SchemaInfo::string())
        .unwrap();
    let refused = sim
        .client
        .get_or_create_schema(sim.now, "t", &SchemaInfo::json("{}"))
        .unwrap();
    assert!(sim
        .client
        .get_or_create_schema(sim.now, "t", &SchemaInfo::bytes())
        .is_err());
    sim.run_until_idle();
    let events = sim.take_events();
    assert!(events.contains(&Event::SchemaCreated {
        request: ok,
        result: Ok(SchemaVersion::from_number(5))
    }));
    assert!(events.contains(&Event::SchemaCreated {
        request: refused,
        result: Err(Error::IncompatibleSchema {
            message: REASON.into()
        })
    }));
}

#[test]
fn received_messages_carry_their_schema_version() {
    let mut sim = Sim::new();
    let c = sim.subscribed(ConsumerOptions::new("s").with_schema(SchemaInfo::auto_consume()));
    let conn = sim.conn_ids()[0];
    let mut meta = support::meta(0);
    meta.schema_version = Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 3]));
    sim.inject(conn, support::message(c.get(), 0, b"x", meta));
    sim.inject(conn, support::message(c.get(), 1, b"y", support::meta(1)));
    sim.run_until_idle();
    let got: Vec<Option<Bytes>> = sim.drain(c).into_iter().map(|m| m.schema_version).collect();
    assert_eq!(
        got,
        vec![Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 3])), None]
    );
}
