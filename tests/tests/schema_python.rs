//! Schemas against the official Python client (`pulsar-client` from PyPI) on the real broker,
//! both ways: JSON and Avro records (the Python client's definitions, every field a nullable
//! union), a record of the primitive types (boolean, int, long, float, double, string), and the
//! string and bytes schemas. Fails (does not skip) when the test interpreter
//! ([`pulsar_tests::support::python_interpreter`]) cannot `import pulsar`.

use std::time::Duration;

use bytes::Bytes;
use pulsar_blocking::schema::{primitive, AvroSchema, JsonSchema, Schema};
use pulsar_blocking::{Client, InitialPosition};
use pulsar_tests::support::{broker, python_command, unique_topic};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(30);
const COUNT: usize = 3;

const SCRIPT: &str = r#"
import sys, json, base64, pulsar
from pulsar.schema import *

class User(Record):
    id = Long()
    name = String()

class Prims(Record):
    b = Boolean()
    i = Integer()
    l = Long()
    f = Float()
    d = Double()
    s = String()

FIELDS = {"json": ["id", "name"], "avro": ["id", "name"], "prims": ["b", "i", "l", "f", "d", "s"]}

def schema(kind):
    return {"json": lambda: JsonSchema(User), "avro": lambda: AvroSchema(User),
            "prims": lambda: AvroSchema(Prims), "string": StringSchema,
            "bytes": BytesSchema}[kind]()

def value(kind, i):
    if kind in ("json", "avro"):
        return User(id=i, name=("py-%d" % i) if i % 2 == 0 else None)
    if kind == "prims":
        return Prims(b=(i % 2 == 0), i=i * 1000, l=i << 40, f=i + 0.5, d=i / 4.0, s="s%d" % i)
    if kind == "string":
        return "py-%d" % i
    return bytes([i, 0, 255])

def as_json(kind, v):
    if kind in FIELDS:
        return {f: getattr(v, f) for f in FIELDS[kind]}
    if kind == "bytes":
        return base64.b64encode(v).decode()
    return v

mode = sys.argv[1]
if mode == "definition":
    print("OUT " + json.dumps(json.loads(schema(sys.argv[2]).schema_info().schema()), separators=(",", ":")))
    sys.exit(0)
url, topic, kind, count = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
client = pulsar.Client(url)
if mode == "produce":
    p = client.create_producer(topic, schema=schema(kind))
    for i in range(count):
        p.send(value(kind, i))
    p.close()
else:
    c = client.subscribe(topic, "python", schema=schema(kind),
                         initial_position=pulsar.InitialPosition.Earliest)
    for i in range(count):
        m = c.receive(timeout_millis=30000)
        print("OUT " + json.dumps(as_json(kind, m.value())))
        c.acknowledge(m)
    c.close()
client.close()
"#;

/// Runs the script; the lines it printed with `OUT `.
fn python(args: &[&str]) -> R<Vec<String>> {
    let out = python_command().arg("-c").arg(SCRIPT).args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "python {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .filter_map(|l| l.strip_prefix("OUT "))
        .map(str::to_owned)
        .collect())
}

fn python_definition(kind: &str) -> R<String> {
    Ok(python(&["definition", kind])?.concat())
}

fn client() -> R<Client> {
    Ok(Client::builder(broker().service_url.as_str()).build()?)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: Option<i64>,
    name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Prims {
    b: Option<bool>,
    i: Option<i32>,
    l: Option<i64>,
    f: Option<f32>,
    d: Option<f64>,
    s: Option<String>,
}

/// Python's `value("json"|"avro", i)`.
fn user(i: usize) -> User {
    User {
        id: Some(i as i64),
        name: i.is_multiple_of(2).then(|| format!("py-{i}")),
    }
}

fn prims(i: usize) -> Prims {
    Prims {
        b: Some(i.is_multiple_of(2)),
        i: Some(i as i32 * 1000),
        l: Some((i as i64) << 40),
        f: Some(i as f32 + 0.5),
        d: Some(i as f64 / 4.0),
        s: Some(format!("s{i}")),
    }
}

/// Both ways: Python produces `kind` and this client reads `expected` with `schema`; this client
/// produces `expected` and Python reads them as `expected_json`.
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
    let url = broker().service_url.clone();
    let n = COUNT.to_string();
    let c = client()?;
    let from_python = unique_topic(&format!("py-schema-{kind}"));
    python(&["produce", &url, &from_python, kind, &n])?;
    let consumer = c
        .consumer(&from_python)
        .subscription("rust")
        .initial_position(InitialPosition::Earliest)
        .schema(schema())
        .subscribe()?;
    for (i, want) in expected.iter().enumerate() {
        let m = consumer.receive_timeout(TIMEOUT)?.ok_or("no message")?;
        assert_eq!(m.value()?, want, "{kind} #{i}: Python -> Rust");
        assert!(m.message.schema_version.is_some() || kind == "bytes");
    }
    let to_python = unique_topic(&format!("rust-schema-{kind}"));
    let p = c.producer(&to_python).schema(schema()).create()?;
    for v in expected {
        p.send(v)?;
    }
    p.close()?;
    let read: Vec<Value> = python(&["consume", &url, &to_python, kind, &n])?
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()?;
    assert_eq!(read, expected_json, "{kind}: Rust -> Python");
    Ok(())
}

fn user_json(u: &User) -> Value {
    json!({"id": u.id, "name": u.name})
}

#[test]
fn json_records_both_ways() -> R {
    let definition = python_definition("json")?;
    let users: Vec<User> = (0..COUNT).map(user).collect();
    let as_json: Vec<Value> = users.iter().map(user_json).collect();
    both_ways(
        "json",
        || JsonSchema::<User>::new(definition.clone()),
        &users,
        &as_json,
    )
}

#[test]
fn avro_records_both_ways() -> R {
    let definition = python_definition("avro")?;
    let users: Vec<User> = (0..COUNT).map(user).collect();
    let as_json: Vec<Value> = users.iter().map(user_json).collect();
    both_ways(
        "avro",
        || AvroSchema::<User>::new(definition.clone()).expect("Python's definition parses"),
        &users,
        &as_json,
    )
}

#[test]
fn a_record_of_primitive_types_both_ways() -> R {
    let definition = python_definition("prims")?;
    let values: Vec<Prims> = (0..COUNT).map(prims).collect();
    let as_json: Vec<Value> = values
        .iter()
        .map(|p| json!({"b": p.b, "i": p.i, "l": p.l, "f": p.f, "d": p.d, "s": p.s}))
        .collect();
    both_ways(
        "prims",
        || AvroSchema::<Prims>::new(definition.clone()).expect("Python's definition parses"),
        &values,
        &as_json,
    )
}

#[test]
fn string_and_bytes_both_ways() -> R {
    let strings: Vec<String> = (0..COUNT).map(|i| format!("py-{i}")).collect();
    let as_json: Vec<Value> = strings.iter().map(|s| json!(s)).collect();
    both_ways("string", primitive::<String>, &strings, &as_json)?;
    let bytes: Vec<Bytes> = (0..COUNT)
        .map(|i| Bytes::from(vec![i as u8, 0, 255]))
        .collect();
    use base64::Engine as _;
    let as_json: Vec<Value> = bytes
        .iter()
        .map(|b| json!(base64::engine::general_purpose::STANDARD.encode(b)))
        .collect();
    both_ways("bytes", primitive::<Bytes>, &bytes, &as_json)
}
