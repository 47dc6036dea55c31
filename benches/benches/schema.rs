//! Schema codecs per message: pulsar-schema's `Schema::encode` / `Schema::decode` next to the bare
//! serializer of the same value in the same run (serde_json, apache-avro, prost), for one record
//! of six fields (long, string, optional string, int, double, boolean).
//!
//! * `json_encode` / `json_decode`: `JsonSchema` against `serde_json::to_vec` / `from_slice`.
//! * `avro_encode` / `avro_decode`: `AvroSchema` against `apache_avro::write_avro_datum_ref` /
//!   `from_avro_datum` + `from_value`.
//! * `protobuf_encode` / `protobuf_decode`: `ProtobufSchema` against `prost::Message::encode_to_vec`
//!   / `decode`.
//!
//! Before the timings, the allocations of one encode and one decode of each (stats_alloc) are
//! printed: the schema's and the bare serializer's.

#![allow(clippy::unwrap_used, missing_docs)]

use std::alloc::System;

use bytes::Bytes;
use criterion::{black_box, criterion_group, Criterion};
use prost::Message as _;
use pulsar_schema::{AvroSchema, JsonSchema, ProtobufSchema, Schema};
use serde::{Deserialize, Serialize};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const DEFINITION: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},{"name":"email","type":["null","string"],"default":null},{"name":"age","type":"int"},{"name":"score","type":"double"},{"name":"active","type":"boolean"}]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: i64,
    name: String,
    email: Option<String>,
    age: i32,
    score: f64,
    active: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct UserProto {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, optional, tag = "3")]
    email: Option<String>,
    #[prost(int32, tag = "4")]
    age: i32,
    #[prost(double, tag = "5")]
    score: f64,
    #[prost(bool, tag = "6")]
    active: bool,
}

fn user() -> User {
    User {
        id: 1_234_567,
        name: "Ada Lovelace".into(),
        email: Some("ada@example.com".into()),
        age: 36,
        score: 98.5,
        active: true,
    }
}

fn user_proto() -> UserProto {
    UserProto {
        id: 1_234_567,
        name: "Ada Lovelace".into(),
        email: Some("ada@example.com".into()),
        age: 36,
        score: 98.5,
        active: true,
    }
}

/// Allocations (and reallocations) of one call of `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, usize) {
    let region = Region::new(GLOBAL);
    let out = f();
    let stats = region.change();
    drop(black_box(out));
    (stats.allocations, stats.reallocations)
}

fn report_allocations() {
    let json = JsonSchema::<User>::new(DEFINITION);
    let avro = AvroSchema::<User>::new(DEFINITION).unwrap();
    let proto = ProtobufSchema::<UserProto>::new(DEFINITION);
    let avro_schema = avro.avro_schema().clone();
    let (u, p) = (user(), user_proto());
    let json_bytes = json.encode(&u).unwrap();
    let avro_bytes = avro.encode(&u).unwrap();
    let proto_bytes = proto.encode(&p).unwrap();
    let rows = [
        (
            "json encode",
            allocations(|| json.encode(&u)),
            allocations(|| serde_json::to_vec(&u)),
        ),
        (
            "json decode",
            allocations(|| json.decode(&json_bytes)),
            allocations(|| serde_json::from_slice::<User>(&json_bytes)),
        ),
        (
            "avro encode",
            allocations(|| avro.encode(&u)),
            allocations(|| bare_avro_encode(&avro_schema, &u)),
        ),
        (
            "avro decode",
            allocations(|| avro.decode(&avro_bytes)),
            allocations(|| bare_avro_decode(&avro_schema, &avro_bytes)),
        ),
        (
            "protobuf encode",
            allocations(|| proto.encode(&p)),
            allocations(|| p.encode_to_vec()),
        ),
        (
            "protobuf decode",
            allocations(|| proto.decode(&proto_bytes)),
            allocations(|| UserProto::decode(&proto_bytes[..])),
        ),
    ];
    eprintln!("allocations per message (allocations + reallocations): pulsar-schema | bare");
    for (name, ours, bare) in rows {
        eprintln!(
            "  {name:<16} {} + {} | {} + {}",
            ours.0, ours.1, bare.0, bare.1
        );
    }
}

fn bare_avro_encode(schema: &apache_avro::Schema, u: &User) -> Vec<u8> {
    let mut out = Vec::new();
    apache_avro::write_avro_datum_ref(schema, u, &mut out).unwrap();
    out
}

fn bare_avro_decode(schema: &apache_avro::Schema, mut payload: &[u8]) -> User {
    let value = apache_avro::from_avro_datum(schema, &mut payload, None).unwrap();
    apache_avro::from_value(&value).unwrap()
}

fn json(c: &mut Criterion) {
    let schema = JsonSchema::<User>::new(DEFINITION);
    let u = user();
    let payload: Bytes = schema.encode(&u).unwrap();
    let mut g = c.benchmark_group("json_encode");
    g.bench_function("serde_json", |b| {
        b.iter(|| serde_json::to_vec(black_box(&u)).unwrap())
    });
    g.bench_function("pulsar-schema", |b| {
        b.iter(|| schema.encode(black_box(&u)).unwrap())
    });
    g.finish();
    let mut g = c.benchmark_group("json_decode");
    g.bench_function("serde_json", |b| {
        b.iter(|| serde_json::from_slice::<User>(black_box(&payload)).unwrap())
    });
    g.bench_function("pulsar-schema", |b| {
        b.iter(|| schema.decode(black_box(&payload)).unwrap())
    });
    g.finish();
}

fn avro(c: &mut Criterion) {
    let schema = AvroSchema::<User>::new(DEFINITION).unwrap();
    let bare = schema.avro_schema().clone();
    let u = user();
    let payload = schema.encode(&u).unwrap();
    let mut g = c.benchmark_group("avro_encode");
    g.bench_function("apache-avro", |b| {
        b.iter(|| bare_avro_encode(&bare, black_box(&u)))
    });
    g.bench_function("pulsar-schema", |b| {
        b.iter(|| schema.encode(black_box(&u)).unwrap())
    });
    g.finish();
    let mut g = c.benchmark_group("avro_decode");
    g.bench_function("apache-avro", |b| {
        b.iter(|| bare_avro_decode(&bare, black_box(&payload)))
    });
    g.bench_function("pulsar-schema", |b| {
        b.iter(|| schema.decode(black_box(&payload)).unwrap())
    });
    g.finish();
}

fn protobuf(c: &mut Criterion) {
    let schema = ProtobufSchema::<UserProto>::new(DEFINITION);
    let p = user_proto();
    let payload = schema.encode(&p).unwrap();
    let mut g = c.benchmark_group("protobuf_encode");
    g.bench_function("prost", |b| b.iter(|| black_box(&p).encode_to_vec()));
    g.bench_function("pulsar-schema", |b| {
        b.iter(|| schema.encode(black_box(&p)).unwrap())
    });
    g.finish();
    let mut g = c.benchmark_group("protobuf_decode");
    g.bench_function("prost", |b| {
        b.iter(|| UserProto::decode(black_box(&payload[..])).unwrap())
    });
    g.bench_function("pulsar-schema", |b| {
        b.iter(|| schema.decode(black_box(&payload)).unwrap())
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    report_allocations();
    json(c);
    avro(c);
    protobuf(c);
}

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = all
}

/// Criterion's main, or with `SCHEMA_BENCH_OP=<group>/<function>` that one operation
/// `SCHEMA_BENCH_N` times (default 10,000) and nothing else: for instruction counts under
/// callgrind, steadier than wall time on a shared machine (run it with N and with 1, and divide
/// the difference by N - 1).
fn main() {
    if let Ok(op) = std::env::var("SCHEMA_BENCH_OP") {
        let n = std::env::var("SCHEMA_BENCH_N")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        repeat(&op, n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

/// Runs the operation named `op` `n` times.
fn repeat(op: &str, n: usize) {
    let json = JsonSchema::<User>::new(DEFINITION);
    let avro = AvroSchema::<User>::new(DEFINITION).unwrap();
    let proto = ProtobufSchema::<UserProto>::new(DEFINITION);
    let bare = avro.avro_schema().clone();
    let (u, p) = (user(), user_proto());
    let (jb, ab, pb) = (
        json.encode(&u).unwrap(),
        avro.encode(&u).unwrap(),
        proto.encode(&p).unwrap(),
    );
    for _ in 0..n {
        match op {
            "json_encode/serde_json" => drop(black_box(serde_json::to_vec(black_box(&u)))),
            "json_encode/pulsar-schema" => drop(black_box(json.encode(black_box(&u)))),
            "json_decode/serde_json" => drop(black_box(serde_json::from_slice::<User>(&jb))),
            "json_decode/pulsar-schema" => drop(black_box(json.decode(black_box(&jb)))),
            "avro_encode/apache-avro" => drop(black_box(bare_avro_encode(&bare, black_box(&u)))),
            "avro_encode/pulsar-schema" => drop(black_box(avro.encode(black_box(&u)))),
            "avro_decode/apache-avro" => drop(black_box(bare_avro_decode(&bare, &ab))),
            "avro_decode/pulsar-schema" => drop(black_box(avro.decode(black_box(&ab)))),
            "protobuf_encode/prost" => drop(black_box(black_box(&p).encode_to_vec())),
            "protobuf_encode/pulsar-schema" => drop(black_box(proto.encode(black_box(&p)))),
            "protobuf_decode/prost" => drop(black_box(UserProto::decode(&pb[..]))),
            "protobuf_decode/pulsar-schema" => drop(black_box(proto.decode(black_box(&pb)))),
            other => panic!("unknown SCHEMA_BENCH_OP {other}"),
        }
    }
}
