//! Decoder behaviour: partial frames, the size limit, every error variant, and robustness
//! against arbitrary bytes.

#![allow(clippy::unwrap_used)] // tests unwrap to fail loudly

mod common;

use bytes::{BufMut, BytesMut};
use common::{message_command, metadata, send};
use proptest::prelude::*;
use prost::Message;
use pulsar_proto::{
    encode_command, encode_payload_command, encode_send, pb, DecodeError, FrameDecoder,
    FrameSection, FRAME_HEADER_ROOM,
};

/// A simple frame around arbitrary command bytes.
fn raw_frame(command: &[u8], rest: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    out.put_u32((4 + command.len() + rest.len()) as u32);
    out.put_u32(command.len() as u32);
    out.put_slice(command);
    out.put_slice(rest);
    out
}

fn message_bytes() -> Vec<u8> {
    message_command(3).encode_to_vec()
}

/// `[metadataSize][metadata][payload]` with the given metadata bytes.
fn metadata_section(metadata: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_u32(metadata.len() as u32);
    out.put_slice(metadata);
    out.put_slice(payload);
    out
}

fn checksummed(section: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_u16(0x0e01);
    out.put_u32(crc32c::crc32c(section));
    out.put_slice(section);
    out
}

fn decode(buf: &mut BytesMut) -> Result<Option<pulsar_proto::Frame>, DecodeError> {
    FrameDecoder::default().decode(buf)
}

#[test]
fn decodes_a_sequence_of_frames() {
    let mut wire = BytesMut::new();
    encode_command(&pb::BaseCommand::from(pb::CommandPing {}), &mut wire);
    encode_send(&send(1), &metadata(1), b"one", &mut wire);
    encode_payload_command(&message_command(5), &metadata(2), b"two", &mut wire);
    encode_command(&pb::BaseCommand::from(pb::CommandPong {}), &mut wire);

    let ping = decode(&mut wire).unwrap().unwrap();
    assert_eq!(ping.command.kind(), Some(pb::base_command::Type::Ping));
    let one = decode(&mut wire).unwrap().unwrap();
    assert_eq!(one.command.send.as_deref(), Some(&send(1)));
    assert_eq!(&one.payload.as_ref().unwrap().data[..], b"one");
    let two = decode(&mut wire).unwrap().unwrap();
    assert_eq!(two.command, message_command(5));
    let payload = two.payload.unwrap();
    assert_eq!(payload.metadata, metadata(2));
    assert_eq!(&payload.data[..], b"two");
    assert_eq!(payload.broker_entry_metadata, None);
    let pong = decode(&mut wire).unwrap().unwrap();
    assert_eq!(pong.command.kind(), Some(pb::base_command::Type::Pong));
    assert!(wire.is_empty());
    assert!(decode(&mut wire).unwrap().is_none());
}

#[test]
fn every_split_point_of_a_partial_frame_waits_and_consumes_nothing() {
    let mut wire = BytesMut::new();
    encode_payload_command_with_entry(&mut wire);
    encode_command(&pb::BaseCommand::from(pb::CommandPing {}), &mut wire);
    let first_len = {
        let mut probe = wire.clone();
        decode(&mut probe).unwrap().unwrap();
        wire.len() - probe.len()
    };
    for cut in 0..wire.len() {
        let mut partial = BytesMut::from(&wire[..cut]);
        let before = partial.clone();
        let result = decode(&mut partial).unwrap();
        if cut < first_len {
            assert!(result.is_none(), "cut at {cut}");
            assert_eq!(partial, before, "cut at {cut} consumed bytes");
        } else {
            let frame = result.expect("first frame complete");
            assert_eq!(frame.command, message_command(7));
            assert_eq!(partial.len(), cut - first_len);
            assert!(decode(&mut partial).unwrap().is_none(), "cut at {cut}");
        }
        // Feeding the rest completes both frames.
        partial.extend_from_slice(&wire[cut..]);
        let mut kinds = Vec::new();
        while let Some(frame) = decode(&mut partial).unwrap() {
            kinds.push(frame.command.kind().unwrap());
        }
        let expected: &[pb::base_command::Type] = if cut < first_len {
            &[
                pb::base_command::Type::Message,
                pb::base_command::Type::Ping,
            ]
        } else {
            &[pb::base_command::Type::Ping]
        };
        assert_eq!(kinds, expected, "cut at {cut}");
        assert!(partial.is_empty());
    }
}

fn encode_payload_command_with_entry(wire: &mut BytesMut) {
    pulsar_proto::encode_payload_command_with_broker_entry_metadata(
        &message_command(7),
        &pb::BrokerEntryMetadata {
            broker_timestamp: Some(1_700_000_000_123),
            index: Some(41),
        },
        &metadata(7),
        b"payload with broker entry metadata",
        wire,
    );
}

#[test]
fn broker_entry_metadata_is_returned() {
    let mut wire = BytesMut::new();
    encode_payload_command_with_entry(&mut wire);
    let payload = decode(&mut wire).unwrap().unwrap().payload.unwrap();
    assert_eq!(
        payload.broker_entry_metadata,
        Some(pb::BrokerEntryMetadata {
            broker_timestamp: Some(1_700_000_000_123),
            index: Some(41),
        })
    );
    assert_eq!(&payload.data[..], b"payload with broker entry metadata");
}

#[test]
fn payload_without_checksum_is_accepted() {
    let section = metadata_section(&metadata(4).encode_to_vec(), b"no crc");
    let mut wire = raw_frame(&message_bytes(), &section);
    let payload = decode(&mut wire).unwrap().unwrap().payload.unwrap();
    assert_eq!(payload.metadata, metadata(4));
    assert_eq!(&payload.data[..], b"no crc");
    assert!(wire.is_empty());
}

#[test]
fn broker_entry_metadata_without_checksum_is_accepted() {
    let entry = pb::BrokerEntryMetadata {
        broker_timestamp: Some(5),
        index: None,
    }
    .encode_to_vec();
    let mut rest = Vec::new();
    rest.put_u16(0x0e02);
    rest.put_u32(entry.len() as u32);
    rest.put_slice(&entry);
    rest.extend(metadata_section(&metadata(4).encode_to_vec(), b"x"));
    let mut wire = raw_frame(&message_bytes(), &rest);
    let payload = decode(&mut wire).unwrap().unwrap().payload.unwrap();
    assert_eq!(
        payload.broker_entry_metadata.unwrap().broker_timestamp,
        Some(5)
    );
    assert_eq!(&payload.data[..], b"x");
}

#[test]
fn frame_limit_follows_max_message_size() {
    let mut decoder = FrameDecoder::new(1000);
    assert_eq!(decoder.max_frame_size(), 1000 + FRAME_HEADER_ROOM);
    decoder.set_max_message_size(100);
    assert_eq!(decoder.max_frame_size(), 100 + FRAME_HEADER_ROOM);
    assert_eq!(
        FrameDecoder::default().max_frame_size(),
        5 * 1024 * 1024 + FRAME_HEADER_ROOM
    );

    // Exactly at the limit is fine (and incomplete here), one byte more is not.
    let limit = decoder.max_frame_size();
    let mut at_limit = BytesMut::new();
    at_limit.put_u32(limit as u32);
    assert!(decoder.decode(&mut at_limit).unwrap().is_none());
    let mut over = BytesMut::new();
    over.put_u32(limit as u32 + 1);
    match decoder.decode(&mut over) {
        Err(DecodeError::FrameTooLarge { size, limit: l }) => {
            assert_eq!((size, l), (limit + 1, limit));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(over.len(), 4, "nothing consumed");

    // A real frame with a payload just over the limit is refused from its first 4 bytes.
    let mut big = BytesMut::new();
    encode_send(&send(1), &metadata(1), &vec![0u8; limit], &mut big);
    let mut head = BytesMut::from(&big[..4]);
    assert!(matches!(
        decoder.decode(&mut head),
        Err(DecodeError::FrameTooLarge { .. })
    ));
}

#[test]
fn huge_announced_size_allocates_nothing() {
    let mut wire = BytesMut::with_capacity(16);
    wire.put_u32(u32::MAX);
    let capacity = wire.capacity();
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::FrameTooLarge { size, .. }) if size == u32::MAX as usize
    ));
    assert_eq!(wire.capacity(), capacity);
}

#[test]
fn total_size_too_small_for_the_command_size() {
    for total in 0..4u32 {
        let mut wire = BytesMut::new();
        wire.put_u32(total);
        match decode(&mut wire) {
            Err(DecodeError::Truncated {
                section: FrameSection::CommandSize,
                needed: 4,
                available,
            }) => assert_eq!(available, total as usize),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn command_size_larger_than_the_frame() {
    let mut wire = BytesMut::new();
    wire.put_u32(4 + 3);
    wire.put_u32(10);
    wire.put_slice(&[0x08, 0x12, 0x92]);
    match decode(&mut wire) {
        Err(DecodeError::Truncated {
            section: FrameSection::Command,
            needed: 10,
            available: 3,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(wire.len(), 11, "fatal errors consume nothing");
}

#[test]
fn command_size_overflowing_usize_arithmetic() {
    let mut wire = BytesMut::new();
    wire.put_u32(8);
    wire.put_u32(u32::MAX);
    wire.put_u32(0);
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::Truncated {
            section: FrameSection::Command,
            ..
        })
    ));
}

#[test]
fn malformed_command_is_a_protobuf_error() {
    // Field 2 declared length-delimited with a length running past the end.
    let mut wire = raw_frame(&[0x08, 0x02, 0x12, 0x7f, 0x00], &[]);
    match decode(&mut wire) {
        Err(DecodeError::Protobuf {
            section: FrameSection::Command,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_command_type() {
    let command = pb::BaseCommand {
        r#type: 69,
        ..Default::default()
    };
    let mut wire = BytesMut::new();
    encode_command(&command, &mut wire);
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::UnknownCommand(69))
    ));
    // A missing `type` decodes as the enum's first value (CONNECT), whose body is then missing.
    let mut wire = raw_frame(&[], &[]);
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::MissingCommandBody {
            kind: pb::base_command::Type::Connect
        })
    ));
}

#[test]
fn missing_command_body() {
    let command = pb::BaseCommand {
        r#type: pb::base_command::Type::Send as i32,
        ..Default::default()
    };
    let mut wire = BytesMut::new();
    encode_command(&command, &mut wire);
    match decode(&mut wire) {
        Err(err @ DecodeError::MissingCommandBody { kind }) => {
            assert_eq!(kind, pb::base_command::Type::Send);
            assert!(!err.is_recoverable());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ping_and_pong_without_body_are_normalised() {
    for kind in [pb::base_command::Type::Ping, pb::base_command::Type::Pong] {
        let mut wire = raw_frame(&[0x08, kind as u8], &[]);
        let frame = decode(&mut wire).unwrap().unwrap();
        assert!(frame.command.has_body(kind));
    }
}

#[test]
fn checksum_mismatch_is_recoverable_and_consumes_the_frame() {
    let mut wire = BytesMut::new();
    encode_payload_command(&message_command(11), &metadata(1), b"payload", &mut wire);
    let corrupt_at = wire.len() - 2;
    wire[corrupt_at] ^= 0x40;
    encode_command(&pb::BaseCommand::from(pb::CommandPing {}), &mut wire);

    match decode(&mut wire) {
        Err(err @ DecodeError::ChecksumMismatch { .. }) => {
            assert!(err.is_recoverable());
            let DecodeError::ChecksumMismatch {
                command,
                expected,
                actual,
            } = err
            else {
                unreachable!()
            };
            assert_ne!(expected, actual);
            let message = command.message.expect("MESSAGE body kept");
            assert_eq!(message.consumer_id, 9);
            assert_eq!(message.message_id.entry_id, 11);
        }
        other => panic!("{other:?}"),
    }
    // The stream is still in sync.
    let next = decode(&mut wire).unwrap().unwrap();
    assert_eq!(next.command.kind(), Some(pb::base_command::Type::Ping));
    assert!(wire.is_empty());
}

#[test]
fn checksum_covers_metadata_size_metadata_and_payload() {
    let mut reference = BytesMut::new();
    encode_payload_command(&message_command(1), &metadata(1), b"abc", &mut reference);
    let command_end = 8 + message_command(1).encoded_len();
    let checksum_end = command_end + 6;
    // Flipping any covered byte is detected.
    for i in checksum_end..reference.len() {
        let mut wire = reference.clone();
        wire[i] ^= 0x01;
        assert!(
            matches!(decode(&mut wire), Err(DecodeError::ChecksumMismatch { .. })),
            "byte {i}"
        );
    }
    // And the checksum value itself.
    for i in command_end + 2..checksum_end {
        let mut wire = reference.clone();
        wire[i] ^= 0x80;
        assert!(matches!(
            decode(&mut wire),
            Err(DecodeError::ChecksumMismatch { .. })
        ));
    }
}

#[test]
fn truncated_broker_entry_metadata() {
    let mut rest = Vec::new();
    rest.put_u16(0x0e02);
    rest.put_u8(0);
    let mut wire = raw_frame(&message_bytes(), &rest);
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::Truncated {
            section: FrameSection::BrokerEntryMetadata,
            needed: 6,
            available: 3
        })
    ));

    let mut rest = Vec::new();
    rest.put_u16(0x0e02);
    rest.put_u32(50);
    rest.put_slice(&[0; 10]);
    let mut wire = raw_frame(&message_bytes(), &rest);
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::Truncated {
            section: FrameSection::BrokerEntryMetadata,
            needed: 50,
            available: 10
        })
    ));
}

#[test]
fn malformed_broker_entry_metadata() {
    let mut rest = Vec::new();
    rest.put_u16(0x0e02);
    rest.put_u32(2);
    rest.put_slice(&[0x08, 0xff]); // varint cut short
    rest.extend(checksummed(&metadata_section(
        &metadata(1).encode_to_vec(),
        b"",
    )));
    let mut wire = raw_frame(&message_bytes(), &rest);
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::Protobuf {
            section: FrameSection::BrokerEntryMetadata,
            ..
        })
    ));
}

#[test]
fn truncated_checksum() {
    let mut wire = raw_frame(&message_bytes(), &[0x0e, 0x01, 0xaa, 0xbb]);
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::Truncated {
            section: FrameSection::Checksum,
            needed: 6,
            available: 4
        })
    ));
}

#[test]
fn truncated_metadata_size() {
    // The checksum covers the two bytes that follow it.
    let rest = checksummed(&[0, 0]);
    let mut wire = raw_frame(&message_bytes(), &rest);
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::Truncated {
            section: FrameSection::MetadataSize,
            needed: 4,
            available: 2
        })
    ));
    // Without magic, fewer than 4 bytes after the command.
    let mut wire = raw_frame(&message_bytes(), &[0, 0, 1]);
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::Truncated {
            section: FrameSection::MetadataSize,
            ..
        })
    ));
}

#[test]
fn truncated_metadata_after_checksum() {
    let mut section = Vec::new();
    section.put_u32(100);
    section.put_slice(&[1, 2, 3]);
    let mut wire = raw_frame(&message_bytes(), &checksummed(&section));
    assert!(matches!(
        decode(&mut wire),
        Err(DecodeError::Truncated {
            section: FrameSection::Metadata,
            needed: 100,
            available: 3
        })
    ));
}

#[test]
fn unrecognised_section_after_the_command_is_bad_magic() {
    let mut wire = raw_frame(&message_bytes(), &[0x0e, 0x03, 0, 0, 0, 0]);
    match decode(&mut wire) {
        Err(DecodeError::BadMagic { found }) => assert_eq!(found, 0x0e03),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_metadata_with_valid_checksum() {
    let section = metadata_section(&[0x0a, 0x50, 0x41], b"payload");
    let mut wire = raw_frame(&message_bytes(), &checksummed(&section));
    match decode(&mut wire) {
        Err(err @ DecodeError::Protobuf { .. }) => {
            assert!(!err.is_recoverable());
            assert!(matches!(
                err,
                DecodeError::Protobuf {
                    section: FrameSection::Metadata,
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_messages_are_readable() {
    let err = DecodeError::FrameTooLarge { size: 10, limit: 5 };
    assert_eq!(
        err.to_string(),
        "frame of 10 bytes exceeds the limit of 5 bytes"
    );
    let err = DecodeError::Truncated {
        section: FrameSection::Metadata,
        needed: 9,
        available: 2,
    };
    assert_eq!(
        err.to_string(),
        "message metadata needs 9 bytes but only 2 remain in the frame"
    );
}

/// Decodes everything decodable from `buf`, continuing past checksum mismatches; checks that
/// the decoder never grows the buffer.
fn drain(decoder: &FrameDecoder, buf: &mut BytesMut) {
    let capacity = buf.capacity();
    loop {
        let before = buf.len();
        match decoder.decode(buf) {
            Ok(Some(_)) => assert!(buf.len() < before),
            Ok(None) => {
                assert_eq!(buf.len(), before);
                break;
            }
            Err(err) if err.is_recoverable() => assert!(buf.len() < before),
            Err(_) => {
                assert_eq!(buf.len(), before);
                break;
            }
        }
        assert!(buf.capacity() <= capacity, "decode grew the buffer");
    }
}

fn valid_stream() -> BytesMut {
    let mut wire = BytesMut::new();
    encode_command(&pb::BaseCommand::from(send(1)), &mut wire);
    encode_send(&send(2), &metadata(2), b"hello world", &mut wire);
    encode_payload_command_with_entry(&mut wire);
    encode_command(
        &pb::BaseCommand::from(pb::CommandFlow {
            consumer_id: 1,
            message_permits: 1000,
        }),
        &mut wire,
    );
    wire
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        drain(&FrameDecoder::default(), &mut BytesMut::from(&data[..]));
        drain(&FrameDecoder::new(0), &mut BytesMut::from(&data[..]));
    }

    #[test]
    fn arbitrary_bytes_behind_a_plausible_header_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..1024),
        command_size in 0u32..1100,
    ) {
        let mut buf = BytesMut::new();
        buf.put_u32(4 + data.len() as u32);
        buf.put_u32(command_size);
        buf.put_slice(&data);
        drain(&FrameDecoder::default(), &mut buf);
    }

    #[test]
    fn mutated_valid_streams_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = valid_stream();
        for (at, value) in edits {
            let i = at.index(wire.len());
            wire[i] = value;
        }
        let len = cut.index(wire.len() + 1);
        wire.truncate(len);
        drain(&FrameDecoder::default(), &mut wire);
    }
}
