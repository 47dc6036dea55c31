//! `FrameDecoder::decode_into` (reusing the previous frame's allocations) against
//! `FrameDecoder::decode`: same results on arbitrary frame sequences, and never a field left
//! over from the frame decoded before.

#![allow(clippy::unwrap_used)] // tests unwrap to fail loudly

mod common;

use bytes::{Buf, BufMut, BytesMut};
use common::{build_command, build_typed, metadata, send, Entropy};
use proptest::prelude::*;
use prost::Message;
use pulsar_proto::{
    encode_command, encode_payload_command, encode_payload_command_with_broker_entry_metadata,
    encode_send, pb, DecodeError, Frame, FrameDecoder, Payload,
};

const NAMES: [&str; 3] = ["standalone-0-1", "standalone-0-2", "other"];

/// A metadata with every field the fast path reads (and more) set.
fn rich_metadata() -> pb::MessageMetadata {
    pb::MessageMetadata {
        producer_name: "a-rather-long-producer-name".into(),
        sequence_id: 9,
        publish_time: 1_700_000_000_009,
        properties: vec![
            pb::KeyValue {
                key: "k1".into(),
                value: "v1".into(),
            },
            pb::KeyValue {
                key: "k2".into(),
                value: "v2".into(),
            },
        ],
        replicated_from: Some("elsewhere".into()),
        partition_key: Some("pk".into()),
        replicate_to: vec!["c1".into()],
        compression: Some(1),
        uncompressed_size: Some(100),
        num_messages_in_batch: Some(3),
        event_time: Some(5),
        ordering_key: Some(b"ok".to_vec().into()),
        uuid: Some("u".into()),
        chunk_id: Some(1),
        ..Default::default()
    }
}

/// Appends one frame chosen by `e`: valid frames of the fast and the prost paths, payload frames
/// with and without broker entry metadata, and broken ones (bad checksum, garbage command).
fn push_frame(e: &mut Entropy<'_>, wire: &mut BytesMut) {
    let kinds = pb::BaseCommand::all_types();
    match e.below(9) {
        0 => {
            let kind = kinds[e.below(kinds.len())];
            encode_command(&build_command(kind, e).0, wire);
        }
        1 | 2 => {
            let mut send = send(e.u64());
            if e.bool() {
                send.num_messages = None;
            }
            if e.bool() {
                send.highest_sequence_id = Some(e.u64());
            }
            let mut metadata = if e.bool() {
                metadata(e.u64())
            } else {
                pb::MessageMetadata::default()
            };
            metadata.producer_name = NAMES[e.below(NAMES.len())].into();
            if e.bool() {
                metadata = rich_metadata();
            }
            let payload = e.bytes(40);
            encode_send(&send, &metadata, &payload, wire);
        }
        3 => {
            let kind = [
                pb::base_command::Type::Send,
                pb::base_command::Type::Message,
            ][e.below(2)];
            let command = build_command(kind, e).0;
            let metadata: pb::MessageMetadata = build_typed("MessageMetadata", e).0;
            let payload = e.bytes(40);
            if e.bool() {
                let entry: pb::BrokerEntryMetadata = build_typed("BrokerEntryMetadata", e).0;
                encode_payload_command_with_broker_entry_metadata(
                    &command, &entry, &metadata, &payload, wire,
                );
            } else {
                encode_payload_command(&command, &metadata, &payload, wire);
            }
        }
        4 => {
            let command = match e.below(5) {
                0 => pb::BaseCommand::from(pb::CommandPing {}),
                1 => pb::BaseCommand::from(pb::CommandPong {}),
                2 => pb::BaseCommand::from(pb::CommandFlow {
                    consumer_id: e.u64(),
                    message_permits: 10,
                }),
                3 => pb::BaseCommand::from(pb::CommandSendReceipt {
                    producer_id: 1,
                    sequence_id: e.u64(),
                    ..Default::default()
                }),
                _ => common::message_command(e.u64()),
            };
            encode_command(&command, wire);
        }
        5 => {
            // A command whose type names one body while another (reusable) body is set too.
            let mut command = pb::BaseCommand::from(pb::CommandPing {});
            command.send = Some(Box::new(send(e.u64())));
            if e.bool() {
                command.message = common::message_command(1).message;
            }
            encode_command(&command, wire);
        }
        6 => {
            // Checksum mismatch: recoverable, the stream goes on.
            let start = wire.len();
            encode_send(&send(1), &metadata(1), b"payload", wire);
            let last = wire.len() - 1;
            wire[last] ^= 0xff;
            debug_assert!(wire.len() > start);
        }
        7 => {
            // Arbitrary command bytes in a well-formed envelope.
            let command = e.bytes(24);
            let rest = if e.bool() { e.bytes(24) } else { Vec::new() };
            wire.put_u32((4 + command.len() + rest.len()) as u32);
            wire.put_u32(command.len() as u32);
            wire.put_slice(&command);
            wire.put_slice(&rest);
        }
        _ => {
            // A missing or empty body.
            let command = pb::BaseCommand {
                r#type: kinds[e.below(kinds.len())] as i32,
                ..Default::default()
            };
            encode_command(&command, wire);
        }
    }
}

/// Puts arbitrary content into `frame`, as a caller may between two calls.
fn scribble(e: &mut Entropy<'_>, frame: &mut Frame) {
    let kinds = pb::BaseCommand::all_types();
    match e.below(4) {
        0 => {}
        1 => frame.command = build_command(kinds[e.below(kinds.len())], e).0,
        2 => {
            frame.payload = Some(Payload {
                broker_entry_metadata: Some(pb::BrokerEntryMetadata {
                    broker_timestamp: Some(1),
                    index: None,
                }),
                metadata: rich_metadata(),
                data: b"stale".to_vec().into(),
            })
        }
        _ => {
            frame.command.send = Some(Box::new(send(77)));
            frame.command.connect = Some(Box::default());
        }
    }
}

/// Decodes `wire` with both APIs in lockstep and compares every step. After an error that
/// leaves the frame in the buffer, skips the frame (when its length is readable) and goes on.
fn compare(wire: &[u8], steering: &[u8]) {
    let decoder = FrameDecoder::default();
    let mut e = Entropy::new(steering);
    let mut old_buf = BytesMut::from(wire);
    let mut new_buf = BytesMut::from(wire);
    let mut frame = Frame::empty();
    for _ in 0..200 {
        let old = decoder.decode(&mut old_buf);
        let before = frame.clone();
        let new = decoder.decode_into(&mut new_buf, &mut frame);
        assert_eq!(old_buf, new_buf, "both consume the same bytes");
        let stop = match (&old, &new) {
            (Ok(Some(expected)), Ok(true)) => {
                assert_eq!(expected, &frame);
                false
            }
            (Ok(None), Ok(false)) => {
                assert_eq!(before, frame, "an incomplete frame leaves `frame` alone");
                true
            }
            (Err(expected), Err(actual)) => {
                assert_eq!(format!("{expected:?}"), format!("{actual:?}"));
                assert_eq!(frame, Frame::empty(), "an error leaves `frame` empty");
                if !actual.is_recoverable() {
                    // Skip the offending frame if its length makes sense, in both buffers.
                    let total = old_buf
                        .get(..4)
                        .map(|b| u32::from_be_bytes(b.try_into().unwrap()));
                    match total.map(|t| 4 + t as usize) {
                        Some(len) if len <= old_buf.len() => {
                            old_buf.advance(len);
                            new_buf.advance(len);
                            false
                        }
                        _ => true,
                    }
                } else {
                    false
                }
            }
            _ => panic!("decode gave {old:?}, decode_into {new:?}"),
        };
        if stop {
            break;
        }
        scribble(&mut e, &mut frame);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_into_matches_decode_on_frame_sequences(
        choices in proptest::collection::vec(any::<u8>(), 0..1500),
        steering in proptest::collection::vec(any::<u8>(), 0..64),
        frames in 1usize..12,
    ) {
        let mut e = Entropy::new(&choices);
        let mut wire = BytesMut::new();
        for _ in 0..frames {
            push_frame(&mut e, &mut wire);
        }
        compare(&wire, &steering);
    }

    #[test]
    fn decode_into_matches_decode_on_mutated_sequences(
        choices in proptest::collection::vec(any::<u8>(), 0..1500),
        steering in proptest::collection::vec(any::<u8>(), 0..64),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut e = Entropy::new(&choices);
        let mut wire = BytesMut::new();
        for _ in 0..6 {
            push_frame(&mut e, &mut wire);
        }
        for (at, value) in edits {
            let i = at.index(wire.len());
            wire[i] = value;
        }
        let len = cut.index(wire.len() + 1);
        compare(&wire[..len], &steering);
    }

    #[test]
    fn decode_into_never_panics_on_arbitrary_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        compare(&data, &[]);
    }
}

#[test]
fn no_field_survives_from_the_previous_frame() {
    let decoder = FrameDecoder::default();
    let mut wire = BytesMut::new();
    let mut rich_send = send(1);
    rich_send.highest_sequence_id = Some(4);
    rich_send.is_chunk = Some(true);
    rich_send.message_id = Some(pb::MessageIdData {
        ledger_id: 1,
        entry_id: 2,
        ..Default::default()
    });
    encode_payload_command_with_broker_entry_metadata(
        &pb::BaseCommand::from(rich_send),
        &pb::BrokerEntryMetadata {
            broker_timestamp: Some(3),
            index: Some(4),
        },
        &rich_metadata(),
        b"first payload",
        &mut wire,
    );
    // Same command type, nothing optional set; the producer name is a prefix of the last one.
    let bare_send = pb::CommandSend {
        producer_id: 2,
        sequence_id: 3,
        ..Default::default()
    };
    let bare_metadata = pb::MessageMetadata {
        producer_name: "a-rather".into(),
        ..Default::default()
    };
    encode_send(&bare_send, &bare_metadata, b"", &mut wire);
    // A payload frame without a producer name at all.
    encode_send(
        &bare_send,
        &pb::MessageMetadata::default(),
        b"third",
        &mut wire,
    );
    encode_command(&pb::BaseCommand::from(pb::CommandPing {}), &mut wire);
    encode_send(&send(5), &rich_metadata(), b"after ping", &mut wire);

    let mut frame = Frame::empty();
    assert!(decoder.decode_into(&mut wire, &mut frame).unwrap());
    assert_eq!(frame.command.send.as_ref().unwrap().is_chunk, Some(true));
    let payload = frame.payload.as_ref().unwrap();
    assert_eq!(payload.metadata, rich_metadata());
    assert!(payload.broker_entry_metadata.is_some());

    assert!(decoder.decode_into(&mut wire, &mut frame).unwrap());
    assert_eq!(frame.command.send.as_deref(), Some(&bare_send));
    let payload = frame.payload.as_ref().unwrap();
    assert_eq!(payload.metadata, bare_metadata);
    assert_eq!(payload.broker_entry_metadata, None);
    assert!(payload.data.is_empty());

    assert!(decoder.decode_into(&mut wire, &mut frame).unwrap());
    let payload = frame.payload.as_ref().unwrap();
    assert_eq!(payload.metadata, pb::MessageMetadata::default());
    assert_eq!(&payload.data[..], b"third");

    assert!(decoder.decode_into(&mut wire, &mut frame).unwrap());
    assert_eq!(
        frame,
        Frame::empty_with(pb::BaseCommand::from(pb::CommandPing {}))
    );

    assert!(decoder.decode_into(&mut wire, &mut frame).unwrap());
    assert_eq!(frame.command.send.as_deref(), Some(&send(5)));
    assert_eq!(frame.payload.as_ref().unwrap().metadata, rich_metadata());
    assert!(wire.is_empty());
}

/// Test helper: a frame holding `command` and no payload.
trait EmptyWith {
    fn empty_with(command: pb::BaseCommand) -> Self;
}

impl EmptyWith for Frame {
    fn empty_with(command: pb::BaseCommand) -> Self {
        Frame {
            command,
            payload: None,
        }
    }
}

#[test]
fn incomplete_frame_leaves_the_frame_and_error_empties_it() {
    let decoder = FrameDecoder::default();
    let mut wire = BytesMut::new();
    encode_send(&send(1), &metadata(1), b"one", &mut wire);
    let mut frame = Frame::empty();
    assert!(decoder.decode_into(&mut wire, &mut frame).unwrap());
    let first = frame.clone();

    let mut partial = BytesMut::new();
    encode_send(&send(2), &metadata(2), b"two", &mut partial);
    partial.truncate(partial.len() - 1);
    let len = partial.len();
    assert!(!decoder.decode_into(&mut partial, &mut frame).unwrap());
    assert_eq!(partial.len(), len);
    assert_eq!(frame, first);

    // Checksum mismatch: consumed, reported with the command, and the frame is emptied.
    let mut bad = BytesMut::new();
    encode_send(&send(3), &metadata(3), b"three", &mut bad);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    match decoder.decode_into(&mut bad, &mut frame) {
        Err(DecodeError::ChecksumMismatch { command, .. }) => {
            assert_eq!(command.send.as_deref(), Some(&send(3)));
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert!(bad.is_empty());
    assert_eq!(frame, Frame::empty());

    // An unknown command type: nothing consumed, the frame is emptied.
    assert!(decoder.decode_into(&mut wire, &mut frame).is_ok());
    let mut unknown = BytesMut::new();
    let command = pb::BaseCommand {
        r#type: 1000,
        ..Default::default()
    };
    unknown.put_u32(4 + command.encoded_len() as u32);
    unknown.put_u32(command.encoded_len() as u32);
    unknown.put_slice(&command.encode_to_vec());
    frame = first.clone();
    assert!(matches!(
        decoder.decode_into(&mut unknown, &mut frame),
        Err(DecodeError::UnknownCommand(1000))
    ));
    assert_eq!(frame, Frame::empty());
}
