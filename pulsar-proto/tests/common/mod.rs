//! Test support: builds arbitrary protocol messages of any type from the compiled descriptor,
//! driven by a byte string that proptest generates (and shrinks).

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::OnceLock;

use bytes::Bytes;
use prost::Message;
use prost_reflect::{
    Cardinality, DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value,
};
use pulsar_proto::pb;

/// Nesting depth beyond which optional and repeated message fields are left empty.
const MAX_DEPTH: usize = 3;

pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET).unwrap())
}

pub fn message_descriptor(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(&format!("pulsar.proto.{name}"))
        .unwrap_or_else(|| panic!("no message {name}"))
}

/// A deterministic source of choices; yields zeros once exhausted (so building terminates and
/// shrinking toward empty input gives minimal messages).
pub struct Entropy<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Entropy<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Entropy { bytes, pos: 0 }
    }

    pub fn u8(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.u8() as usize % n
    }

    /// A u64 biased toward interesting magnitudes (small, around varint edges, huge).
    pub fn u64(&mut self) -> u64 {
        let width = self.below(9);
        let mut v = 0u64;
        for _ in 0..width {
            v = (v << 8) | u64::from(self.u8());
        }
        v
    }

    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.u8()).collect()
    }

    pub fn string(&mut self, max: usize) -> String {
        let n = self.below(max + 1);
        (0..n)
            .map(|_| match self.below(4) {
                0 => 'é',
                _ => char::from(b'a' + self.below(26) as u8),
            })
            .collect()
    }
}

/// Builds a message of type `descriptor`: required fields always set, optional ones at random,
/// repeated ones with 0–3 elements.
pub fn build_message(
    descriptor: &MessageDescriptor,
    e: &mut Entropy<'_>,
    depth: usize,
) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    for field in descriptor.fields() {
        let is_message = matches!(field.kind(), Kind::Message(_));
        match field.cardinality() {
            Cardinality::Repeated => {
                if is_message && depth >= MAX_DEPTH {
                    continue;
                }
                let n = e.below(4);
                if n > 0 {
                    let values = (0..n).map(|_| value(&field.kind(), e, depth)).collect();
                    message.set_field(&field, Value::List(values));
                }
            }
            Cardinality::Required => {
                let v = value(&field.kind(), e, depth);
                message.set_field(&field, v);
            }
            Cardinality::Optional => {
                if (is_message && depth >= MAX_DEPTH) || !e.bool() {
                    continue;
                }
                let v = value(&field.kind(), e, depth);
                message.set_field(&field, v);
            }
        }
    }
    message
}

fn value(kind: &Kind, e: &mut Entropy<'_>, depth: usize) -> Value {
    match kind {
        Kind::Double => Value::F64(e.u64() as f64 / 3.0),
        Kind::Float => Value::F32(e.u64() as f32 / 3.0),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(e.u64() as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(e.u64() as i64),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(e.u64() as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(e.u64()),
        Kind::Bool => Value::Bool(e.bool()),
        Kind::String => Value::String(e.string(12)),
        Kind::Bytes => Value::Bytes(Bytes::from(e.bytes(16))),
        Kind::Message(m) => Value::Message(build_message(m, e, depth + 1)),
        Kind::Enum(en) => {
            let values: Vec<i32> = en.values().map(|v| v.number()).collect();
            Value::EnumNumber(values[e.below(values.len())])
        }
    }
}

/// Builds a typed message `T` from entropy; returns it with the dynamic original.
pub fn build_typed<T: Message + Default>(name: &str, e: &mut Entropy<'_>) -> (T, DynamicMessage) {
    let dynamic = build_message(&message_descriptor(name), e, 0);
    let typed = T::decode(dynamic.encode_to_vec().as_slice()).unwrap();
    (typed, dynamic)
}

/// Proto name of the body message of each command type, e.g. `Send` -> `CommandSend`.
pub fn body_message_name(kind: pb::base_command::Type) -> String {
    let base = message_descriptor("BaseCommand");
    let field = base
        .get_field(kind as u32)
        .unwrap_or_else(|| panic!("no body field for {kind:?}"));
    match field.kind() {
        Kind::Message(m) => m.name().to_owned(),
        other => panic!("body of {kind:?} is {other:?}"),
    }
}

/// A random `BaseCommand` of type `kind` (body filled at random), typed and dynamic.
pub fn build_command(
    kind: pb::base_command::Type,
    e: &mut Entropy<'_>,
) -> (pb::BaseCommand, DynamicMessage) {
    let base = message_descriptor("BaseCommand");
    let body_field = base.get_field(kind as u32).unwrap();
    let Kind::Message(body_descriptor) = body_field.kind() else {
        unreachable!()
    };
    let body = build_message(&body_descriptor, e, 1);
    let mut dynamic = DynamicMessage::new(base.clone());
    dynamic.set_field_by_number(1, Value::EnumNumber(kind as i32));
    dynamic.set_field(&body_field, Value::Message(body));
    let typed = pb::BaseCommand::decode(dynamic.encode_to_vec().as_slice()).unwrap();
    (typed, dynamic)
}

/// Typed → bytes → dynamic must give back the original dynamic message: no field was lost or
/// changed by the generated code.
pub fn assert_same_as_dynamic<T: Message>(typed: &T, dynamic: &DynamicMessage) {
    let back =
        DynamicMessage::decode(dynamic.descriptor(), typed.encode_to_vec().as_slice()).unwrap();
    assert_eq!(&back, dynamic);
}

/// A small metadata for hand-written tests.
pub fn metadata(sequence_id: u64) -> pb::MessageMetadata {
    pb::MessageMetadata {
        producer_name: "standalone-0-1".into(),
        sequence_id,
        publish_time: 1_700_000_000_000 + sequence_id,
        properties: vec![pb::KeyValue {
            key: "k".into(),
            value: "v".into(),
        }],
        partition_key: Some("key-1".into()),
        ..Default::default()
    }
}

pub fn send(sequence_id: u64) -> pb::CommandSend {
    pb::CommandSend {
        producer_id: 1,
        sequence_id,
        num_messages: Some(1),
        ..Default::default()
    }
}

pub fn message_command(entry_id: u64) -> pb::BaseCommand {
    pb::BaseCommand::from(pb::CommandMessage {
        consumer_id: 9,
        message_id: pb::MessageIdData {
            ledger_id: 12,
            entry_id,
            ..Default::default()
        },
        redelivery_count: Some(0),
        ..Default::default()
    })
}
