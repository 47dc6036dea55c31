//! Schemas against the official Java client (tests/java/SchemaInterop.java, compiled with javac on
//! the Java client's jars) on the real broker, both ways: JSON, Avro, KeyValue INLINE and
//! SEPARATED, the primitive and time kinds, Protobuf, Protobuf native and AUTO_CONSUME. Java's
//! `AvroSchema.of(User.class)` and this client's Avro schema of the same record are one schema
//! version.

use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use pulsar_blocking::schema::{
    primitive, AutoConsume, AvroSchema, Instant, JsonSchema, KeyValue, KeyValueEncoding,
    KeyValueSchema, LocalDateTime, PrimitiveValue, ProtobufNativeSchema, ProtobufSchema, Schema,
    SchemaType,
};
use pulsar_blocking::{Client, InitialPosition};
use pulsar_tests::support::{broker, unique_topic, JavaProgram};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(30);
const COUNT: usize = 3;

/// What Java's reflection gives for `User { long id; String name; }`.
const USER: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null}]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: i64,
    name: Option<String>,
}

fn java() -> R<&'static JavaProgram> {
    static PROGRAM: OnceLock<Result<JavaProgram, String>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| JavaProgram::compile("SchemaInterop").map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| e.clone().into())
}

/// Runs the Java program; the lines it printed (those starting `OUT `, without it: the client
/// logs to stdout as well).
fn run_java(args: &[&str]) -> R<Vec<String>> {
    let Output {
        status,
        stdout,
        stderr,
    } = java()?.command(args).output()?;
    if !status.success() {
        return Err(format!(
            "java {args:?}: {status}\n{}",
            String::from_utf8_lossy(&stderr)
        )
        .into());
    }
    Ok(String::from_utf8(stdout)?
        .lines()
        .filter_map(|l| l.strip_prefix("OUT "))
        .map(str::to_owned)
        .collect())
}

fn java_produce(topic: &str, kind: &str) -> R {
    run_java(&[
        "produce",
        &broker().service_url,
        topic,
        kind,
        &COUNT.to_string(),
    ])
    .map(drop)
}

/// What the Java consumer of `kind` read, one JSON value per message.
fn java_consume(topic: &str, kind: &str) -> R<Vec<Value>> {
    run_java(&[
        "consume",
        &broker().service_url,
        topic,
        kind,
        &COUNT.to_string(),
    ])?
    .iter()
    .map(|l| serde_json::from_str(l).map_err(|e| format!("{e}: {l}").into()))
    .collect()
}

fn client() -> R<Client> {
    Ok(Client::builder(broker().service_url.as_str()).build()?)
}

/// Reads `COUNT` values with `schema` from the start of `topic`.
fn rust_consume<S: Schema>(c: &Client, topic: &str, schema: S) -> R<Vec<S::Value>> {
    let consumer = c
        .consumer(topic)
        .subscription("rust")
        .initial_position(InitialPosition::Earliest)
        .schema(schema)
        .subscribe()?;
    (0..COUNT)
        .map(|_| {
            let m = consumer.receive_timeout(TIMEOUT)?.ok_or("no message")?;
            consumer.ack(&m)?;
            Ok(m.into_value()?)
        })
        .collect()
}

fn rust_produce<S: Schema>(c: &Client, topic: &str, schema: S, values: &[S::Value]) -> R {
    let p = c.producer(topic).schema(schema).create()?;
    for v in values {
        p.send(v)?;
    }
    p.close()?;
    Ok(())
}

/// Java's `value("json"|"avro", i)`.
fn user(i: usize) -> User {
    User {
        id: i as i64,
        name: i.is_multiple_of(2).then(|| format!("java-{i}")),
    }
}

fn user_json(u: &User) -> Value {
    json!({"id": u.id, "name": u.name})
}

/// Both ways with `schema`: Java produces and this client reads the values `expected`; this
/// client produces them and Java reads `expected_json`.
fn both_ways<S>(
    kind: &str,
    schema: impl Fn() -> S,
    expected: &[S::Value],
    expected_json: &[Value],
) -> R
where
    S: Schema,
    S::Value: PartialEq + std::fmt::Debug,
{
    let c = client()?;
    let from_java = unique_topic(&format!("interop-java-{kind}"));
    java_produce(&from_java, kind)?;
    assert_eq!(
        rust_consume(&c, &from_java, schema())?,
        expected,
        "{kind}: Java -> Rust"
    );
    let to_java = unique_topic(&format!("interop-rust-{kind}"));
    rust_produce(&c, &to_java, schema(), expected)?;
    assert_eq!(
        java_consume(&to_java, kind)?,
        expected_json,
        "{kind}: Rust -> Java"
    );
    Ok(())
}

#[test]
fn java_avro_pojo_and_this_clients_avro_schema_register_as_one_version() -> R {
    let java_definition = run_java(&["definition", "avro"])?.concat();
    assert_eq!(java_definition, USER, "Java's reflected definition");
    let c = client()?;
    let topic = unique_topic("interop-avro-same-version");
    java_produce(&topic, "avro")?;
    let users: Vec<User> = (0..COUNT).map(|i| user(i + 10)).collect();
    rust_produce(&c, &topic, AvroSchema::<User>::new(USER)?, &users)?;
    let latest = c.get_schema(&topic, None)?.ok_or("a schema")?;
    assert_eq!(latest.version.number(), Some(0), "no second version");
    assert_eq!(
        c.get_or_create_schema(&topic, AvroSchema::<User>::new(USER)?.info())?
            .number(),
        Some(0)
    );
    let consumer = c
        .consumer(&topic)
        .subscription("rust")
        .initial_position(InitialPosition::Earliest)
        .schema(AvroSchema::<User>::new(USER)?)
        .subscribe()?;
    let mut got = Vec::new();
    for _ in 0..2 * COUNT {
        let m = consumer.receive_timeout(TIMEOUT)?.ok_or("no message")?;
        got.push(m.into_value()?);
    }
    let mut expected: Vec<User> = (0..COUNT).map(user).collect();
    expected.extend(users.iter().cloned());
    assert_eq!(got, expected, "Java's messages then ours, one schema");
    let java_read = run_java(&["consume", &broker().service_url, &topic, "avro", "6"])?;
    let java_read: Vec<Value> = java_read
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        java_read,
        expected.iter().map(user_json).collect::<Vec<_>>(),
        "Java reads both"
    );
    Ok(())
}

#[test]
fn json_both_ways() -> R {
    let users: Vec<User> = (0..COUNT).map(user).collect();
    let as_json: Vec<Value> = users.iter().map(user_json).collect();
    both_ways("json", || JsonSchema::<User>::new(USER), &users, &as_json)
}

#[test]
fn avro_both_ways() -> R {
    let users: Vec<User> = (0..COUNT).map(user).collect();
    let as_json: Vec<Value> = users.iter().map(user_json).collect();
    both_ways(
        "avro",
        || AvroSchema::<User>::new(USER).expect("definition"),
        &users,
        &as_json,
    )
}

#[test]
fn key_values_inline_and_separated_both_ways() -> R {
    for (kind, encoding) in [
        ("kv-inline", KeyValueEncoding::Inline),
        ("kv-separated", KeyValueEncoding::Separated),
    ] {
        let values: Vec<KeyValue<String, User>> = (0..COUNT)
            .map(|i| {
                KeyValue::new(
                    format!("k{i}"),
                    User {
                        id: i as i64,
                        name: Some(format!("v{i}")),
                    },
                )
            })
            .collect();
        let as_json: Vec<Value> = values
            .iter()
            .map(|kv| json!({"key": kv.key, "value": user_json(&kv.value)}))
            .collect();
        both_ways(
            kind,
            || {
                KeyValueSchema::new(
                    primitive::<String>(),
                    AvroSchema::<User>::new(USER).expect("definition"),
                    encoding,
                )
            },
            &values,
            &as_json,
        )?;
    }
    Ok(())
}

/// A step on a topic.
type Check = Box<dyn Fn(&Client, &str) -> R>;

/// One primitive kind: Java's values, their JSON form, and the checks of both directions given
/// the topic Java wrote and what Java read from the topic this client wrote.
struct Case {
    kind: &'static str,
    produce: Check,
    consume: Check,
    json: Vec<Value>,
}

/// The case of kind `kind` with Java's values `f(i)`.
fn case<T>(kind: &'static str, f: impl Fn(usize) -> T, to_json: impl Fn(&T) -> Value) -> Case
where
    T: PrimitiveValue + PartialEq + std::fmt::Debug,
{
    let values: Vec<T> = (0..COUNT).map(f).collect();
    let json = values.iter().map(to_json).collect();
    let values = std::sync::Arc::new(values);
    let expected = std::sync::Arc::clone(&values);
    Case {
        kind,
        produce: Box::new(move |c, topic| rust_produce(c, topic, primitive::<T>(), &values)),
        consume: Box::new(move |c, topic| {
            assert_eq!(
                rust_consume(c, topic, primitive::<T>())?,
                *expected,
                "{kind}: Java -> Rust"
            );
            Ok(())
        }),
        json,
    }
}

#[test]
fn primitive_kinds_both_ways() -> R {
    let cases = [
        case("string", |i| format!("java-{i}"), |v| json!(v)),
        case("bool", |i| i.is_multiple_of(2), |v| json!(v)),
        case("int8", |i| i as i8 - 3, |v| json!(v)),
        case("int16", |i| i as i16 * 300, |v| json!(v)),
        case("int32", |i| i as i32 * 100_000, |v| json!(v)),
        case("int64", |i| (i as i64) << 40, |v| json!(v)),
        case("float", |i| i as f32 + 0.5, |v| json!(v)),
        case("double", |i| i as f64 / 4.0, |v| json!(v)),
        case(
            "instant",
            |i| Instant {
                seconds: 1_700_000_000 + i as i64,
                nanos: i as i32 * 7,
            },
            |v| json!({"seconds": v.seconds, "nanos": v.nanos}),
        ),
        // LocalDateTime.of(2024, 1, 1 + i, 12, 30, 0, i): 2024-01-01 is day 19723
        case(
            "local-date-time",
            |i| LocalDateTime {
                epoch_day: 19_723 + i as i64,
                nano_of_day: 45_000_000_000_000 + i as i64,
            },
            |v| json!({"epochDay": v.epoch_day, "nanoOfDay": v.nano_of_day}),
        ),
    ];
    let c = client()?;
    let kinds: Vec<&str> = cases.iter().map(|k| k.kind).collect();
    let from_java: Vec<String> = kinds
        .iter()
        .map(|k| unique_topic(&format!("interop-java-{k}")))
        .collect();
    java_produce(&from_java.join(","), &kinds.join(","))?;
    let to_java: Vec<String> = kinds
        .iter()
        .map(|k| unique_topic(&format!("interop-rust-{k}")))
        .collect();
    for ((case, from), to) in cases.iter().zip(&from_java).zip(&to_java) {
        (case.consume)(&c, from)?;
        (case.produce)(&c, to)?;
    }
    let read = java_consume(&to_java.join(","), &kinds.join(","))?;
    for (case, got) in cases.iter().zip(read.chunks(COUNT)) {
        assert_eq!(got, case.json, "{}: Rust -> Java", case.kind);
    }
    Ok(())
}

/// Java's `Timestamp` values.
fn timestamps() -> Vec<prost_types::Timestamp> {
    (0..COUNT)
        .map(|i| prost_types::Timestamp {
            seconds: 1000 + i as i64,
            nanos: i as i32,
        })
        .collect()
}

fn timestamp_json(t: &prost_types::Timestamp) -> Value {
    json!({"seconds": t.seconds, "nanos": t.nanos})
}

/// `google/protobuf/timestamp.proto` as a `FileDescriptorSet` (the message's two fields).
fn timestamp_descriptor() -> Vec<u8> {
    use prost::Message as _;
    use prost_types::field_descriptor_proto::{Label, Type};
    let field = |name: &str, number: i32, kind: Type| prost_types::FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(kind as i32),
        json_name: Some(name.into()),
        ..Default::default()
    };
    prost_types::FileDescriptorSet {
        file: vec![prost_types::FileDescriptorProto {
            name: Some("google/protobuf/timestamp.proto".into()),
            package: Some("google.protobuf".into()),
            message_type: vec![prost_types::DescriptorProto {
                name: Some("Timestamp".into()),
                field: vec![
                    field("seconds", 1, Type::Int64),
                    field("nanos", 2, Type::Int32),
                ],
                ..Default::default()
            }],
            syntax: Some("proto3".into()),
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn native_schema() -> ProtobufNativeSchema<prost_types::Timestamp> {
    ProtobufNativeSchema::new(
        &timestamp_descriptor(),
        "google.protobuf.Timestamp",
        "google/protobuf/timestamp.proto",
    )
}

#[test]
fn protobuf_native_both_ways_and_read_by_javas_auto_consume() -> R {
    let values = timestamps();
    let as_json: Vec<Value> = values.iter().map(timestamp_json).collect();
    both_ways("protobuf-native", native_schema, &values, &as_json)?;
    // Java decodes our messages through our descriptor alone (a GenericRecord of a DynamicMessage)
    let c = client()?;
    let topic = unique_topic("interop-rust-protobuf-native-auto");
    rust_produce(&c, &topic, native_schema(), &values)?;
    assert_eq!(java_consume(&topic, "auto")?, as_json);
    Ok(())
}

#[test]
fn protobuf_both_ways_with_javas_definition() -> R {
    let definition = run_java(&["definition", "protobuf"])?.concat();
    let values = timestamps();
    let as_json: Vec<Value> = values.iter().map(timestamp_json).collect();
    both_ways(
        "protobuf",
        || ProtobufSchema::<prost_types::Timestamp>::new(definition.clone()),
        &values,
        &as_json,
    )
}

#[test]
fn auto_consume_reads_javas_messages_and_java_reads_ours() -> R {
    let c = client()?;
    for (kind, expected) in [
        ("avro", (0..COUNT).map(|i| user_json(&user(i))).collect::<Vec<_>>()),
        // Java's JSON leaves null fields out
        (
            "json",
            (0..COUNT)
                .map(|i| match user(i).name {
                    Some(n) => json!({"id": i, "name": n}),
                    None => json!({"id": i}),
                })
                .collect(),
        ),
        ("int64", (0..COUNT).map(|i| json!((i as i64) << 40)).collect()),
        ("string", (0..COUNT).map(|i| json!(format!("java-{i}"))).collect()),
        (
            "kv-separated",
            (0..COUNT)
                .map(|i| json!({"key": format!("k{i}"), "value": {"id": i, "name": format!("v{i}")}}))
                .collect(),
        ),
    ] {
        let topic = unique_topic(&format!("interop-auto-{kind}"));
        java_produce(&topic, kind)?;
        let got: Vec<Value> = rust_consume(&c, &topic, AutoConsume::new())?
            .iter()
            .map(|v| v.to_json())
            .collect();
        assert_eq!(got, expected, "{kind}: Rust AUTO_CONSUME of Java's messages");
    }
    for (kind, schema) in [("avro", SchemaType::Avro), ("json", SchemaType::Json)] {
        let topic = unique_topic(&format!("interop-rust-auto-{kind}"));
        let users: Vec<User> = (0..COUNT).map(user).collect();
        match schema {
            SchemaType::Avro => rust_produce(&c, &topic, AvroSchema::<User>::new(USER)?, &users)?,
            _ => rust_produce(&c, &topic, JsonSchema::<User>::new(USER), &users)?,
        }
        assert_eq!(
            java_consume(&topic, "auto")?,
            users.iter().map(user_json).collect::<Vec<_>>(),
            "{kind}: Java AUTO_CONSUME of ours"
        );
    }
    Ok(())
}
