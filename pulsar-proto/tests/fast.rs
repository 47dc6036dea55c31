//! The hand-written codecs (`pulsar_proto::fast`) against prost: same values, same errors, same
//! bytes, on arbitrary messages of every type they handle, on damaged encodings of them and on
//! arbitrary bytes.

#![allow(clippy::unwrap_used)] // tests unwrap to fail loudly

mod common;

use bytes::BytesMut;
use common::{build_command, build_typed, Entropy};
use proptest::prelude::*;
use prost::Message;
use pulsar_proto::{fast, pb, FrameDecoder};

use pb::base_command::Type;

/// The command types the hand-written decoder handles.
const HOT: &[Type] = &[
    Type::Send,
    Type::SendReceipt,
    Type::Message,
    Type::Ack,
    Type::Flow,
    Type::Ping,
    Type::Pong,
];

fn entropy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..400)
}

fn hot_kind() -> impl Strategy<Value = Type> {
    proptest::sample::select(HOT.to_vec())
}

fn any_kind() -> impl Strategy<Value = Type> {
    proptest::sample::select(pb::BaseCommand::all_types().to_vec())
}

fn ids_are_plain(ids: &[&pb::MessageIdData]) -> bool {
    ids.iter().all(|id| id.first_chunk_message_id.is_none())
}

/// Whether the hand-written decoder must take `command` without falling back: a hot command
/// without the fields it leaves to prost (chunk ids inside message ids, ack properties).
fn fully_supported(command: &pb::BaseCommand) -> bool {
    let kind = command.kind();
    if !kind.is_some_and(|kind| HOT.contains(&kind)) {
        return false;
    }
    let mut ids = Vec::new();
    if let Some(send) = &command.send {
        ids.extend(send.message_id.as_ref());
    }
    if let Some(receipt) = &command.send_receipt {
        ids.extend(receipt.message_id.as_ref());
    }
    if let Some(message) = &command.message {
        ids.push(&message.message_id);
    }
    if let Some(ack) = &command.ack {
        if !ack.properties.is_empty() {
            return false;
        }
        ids.extend(ack.message_id.iter());
    }
    ids_are_plain(&ids)
}

/// Damages an encoding: truncates it, flips a byte, or inserts one, as chosen by `how`.
fn damage(bytes: &[u8], how: (u8, usize, u8)) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let (kind, at, byte) = how;
    let at = if out.is_empty() { 0 } else { at % out.len() };
    match kind % 3 {
        0 => out.truncate(at),
        1 => {
            if let Some(b) = out.get_mut(at) {
                *b ^= byte | 1;
            }
        }
        _ => out.insert(at, byte),
    }
    out
}

/// One field-shaped token: field number, wire type, a value, a form selector, some bytes.
type Token = (u64, u64, u64, u8, Vec<u8>);

fn tokens() -> impl Strategy<Value = Vec<Token>> {
    proptest::collection::vec(
        (
            0u64..34,
            prop_oneof![4 => Just(0u64), 4 => Just(2u64), 1 => 0u64..8],
            any::<u64>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..10),
        ),
        0..10,
    )
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Bytes shaped like protobuf fields of numbers 0 to 33 and every wire type: varints in
/// canonical, padded, ten-byte (valid and overflowing) and truncated forms; length-delimited
/// runs holding ASCII, arbitrary bytes (often invalid UTF-8), a nested run from `nested`, or
/// a length past the end; fixed-width values; group markers.
fn soup(tokens: &[Token], nested: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, wire_type, value, form, bytes) in tokens {
        push_varint(&mut out, (field << 3) | wire_type);
        match wire_type {
            0 => match form % 6 {
                0 => push_varint(&mut out, *value),
                1 => {
                    // Padded: a continuation byte then a zero byte.
                    push_varint(&mut out, *value % 128);
                    if let Some(last) = out.last_mut() {
                        *last |= 0x80;
                    }
                    out.push(0);
                }
                2 => {
                    out.extend_from_slice(&[0xff; 9]);
                    out.push((*value % 4) as u8);
                }
                3 => out.push(0x80),
                _ => push_varint(&mut out, *value % 300),
            },
            2 => {
                let content: Vec<u8> = match form % 5 {
                    0 => bytes.iter().map(|b| b'a' + b % 26).collect(),
                    1 => bytes.clone(),
                    2 | 3 if !nested.is_empty() => nested[*value as usize % nested.len()].clone(),
                    _ => {
                        push_varint(&mut out, bytes.len() as u64 + 1 + *value % 5);
                        out.extend_from_slice(bytes);
                        continue;
                    }
                };
                push_varint(&mut out, content.len() as u64);
                out.extend_from_slice(&content);
            }
            1 => out.extend_from_slice(&value.to_le_bytes()),
            5 => out.extend_from_slice(&(*value as u32).to_le_bytes()),
            _ => {}
        }
    }
    out
}

fn same_as_prost<T: Message + Default + PartialEq>(
    ours: Result<T, prost::DecodeError>,
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    match (ours, T::decode(bytes)) {
        (Ok(ours), Ok(theirs)) => prop_assert!(ours == theirs, "values differ"),
        (Err(_), Err(_)) => {}
        (ours, theirs) => prop_assert!(
            false,
            "ok/err differ: ours ok {}, prost ok {}",
            ours.is_ok(),
            theirs.is_ok()
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn hot_commands_decode_by_hand_as_prost_does(kind in hot_kind(), seed in entropy()) {
        let (command, dynamic) = build_command(kind, &mut Entropy::new(&seed));
        // Two encoders' bytes: prost's and prost-reflect's.
        for bytes in [command.encode_to_vec(), dynamic.encode_to_vec()] {
            let by_hand = fast::try_decode_base_command(&bytes);
            if fully_supported(&command) {
                prop_assert!(by_hand.is_some(), "fell back on {:?}", command);
            }
            if let Some(by_hand) = by_hand {
                prop_assert_eq!(&by_hand, &command);
            }
            prop_assert_eq!(fast::decode_base_command(&bytes).unwrap(), command.clone());
        }
    }

    #[test]
    fn every_command_decodes_as_prost_does(
        kind in any_kind(),
        seed in entropy(),
        how in (any::<u8>(), any::<usize>(), any::<u8>()),
    ) {
        let (command, _) = build_command(kind, &mut Entropy::new(&seed));
        let bytes = command.encode_to_vec();
        if let Some(by_hand) = fast::try_decode_base_command(&bytes) {
            prop_assert!(HOT.contains(&kind));
            prop_assert_eq!(&by_hand, &command);
        }
        prop_assert_eq!(fast::decode_base_command(&bytes).unwrap(), command);
        let damaged = damage(&bytes, how);
        same_as_prost(fast::decode_base_command(&damaged), &damaged)?;
    }

    #[test]
    fn message_metadata_decodes_and_encodes_as_prost_does(
        seed in entropy(),
        how in (any::<u8>(), any::<usize>(), any::<u8>()),
    ) {
        let (metadata, dynamic) =
            build_typed::<pb::MessageMetadata>("MessageMetadata", &mut Entropy::new(&seed));
        for bytes in [metadata.encode_to_vec(), dynamic.encode_to_vec()] {
            let by_hand = fast::try_decode_message_metadata(&bytes);
            // every field, encryption keys included, is parsed by hand
            prop_assert_eq!(by_hand.as_ref(), Some(&metadata));
            prop_assert_eq!(&fast::decode_message_metadata(&bytes).unwrap(), &metadata);
            let damaged = damage(&bytes, how);
            same_as_prost(fast::decode_message_metadata(&damaged), &damaged)?;
        }

        let mut out = BytesMut::from(&b"xy"[..]);
        fast::encode_message_metadata(&metadata, &mut out);
        prop_assert_eq!(&out[2..], &metadata.encode_to_vec()[..]);
        prop_assert_eq!(fast::message_metadata_len(&metadata), metadata.encoded_len());
    }

    #[test]
    fn single_message_metadata_decodes_and_encodes_as_prost_does(
        seed in entropy(),
        how in (any::<u8>(), any::<usize>(), any::<u8>()),
    ) {
        let (metadata, dynamic) = build_typed::<pb::SingleMessageMetadata>(
            "SingleMessageMetadata",
            &mut Entropy::new(&seed),
        );
        for bytes in [metadata.encode_to_vec(), dynamic.encode_to_vec()] {
            let by_hand = fast::try_decode_single_message_metadata(&bytes);
            prop_assert_eq!(by_hand.as_ref(), Some(&metadata));
            let damaged = damage(&bytes, how);
            same_as_prost(fast::decode_single_message_metadata(&damaged), &damaged)?;
        }

        let mut out = BytesMut::from(&b"xy"[..]);
        fast::encode_single_message_metadata(&metadata, &mut out);
        prop_assert_eq!(&out[2..], &metadata.encode_to_vec()[..]);
        prop_assert_eq!(fast::single_message_metadata_len(&metadata), metadata.encoded_len());
    }

    #[test]
    fn command_send_encodes_as_prost_does(seed in entropy()) {
        let (send, _) = build_typed::<pb::CommandSend>("CommandSend", &mut Entropy::new(&seed));
        let mut out = BytesMut::from(&b"xy"[..]);
        fast::encode_command_send(&send, &mut out);
        prop_assert_eq!(&out[2..], &send.encode_to_vec()[..]);
        prop_assert_eq!(fast::command_send_len(&send), send.encoded_len());
    }

    /// The SEND frame against one assembled from prost's encodings and the frame layout.
    #[test]
    fn encode_send_matches_a_frame_built_with_prost(
        seed in entropy(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut e = Entropy::new(&seed);
        let (send, _) = build_typed::<pb::CommandSend>("CommandSend", &mut e);
        let (metadata, _) = build_typed::<pb::MessageMetadata>("MessageMetadata", &mut e);

        let command = pb::BaseCommand::from(send.clone()).encode_to_vec();
        let metadata_bytes = metadata.encode_to_vec();
        let mut checked = Vec::new();
        checked.extend_from_slice(&(metadata_bytes.len() as u32).to_be_bytes());
        checked.extend_from_slice(&metadata_bytes);
        checked.extend_from_slice(&payload);
        let mut expected = Vec::new();
        let total = 4 + command.len() + 2 + 4 + checked.len();
        expected.extend_from_slice(&(total as u32).to_be_bytes());
        expected.extend_from_slice(&(command.len() as u32).to_be_bytes());
        expected.extend_from_slice(&command);
        expected.extend_from_slice(&[0x0e, 0x01]);
        expected.extend_from_slice(&crc32c::crc32c(&checked).to_be_bytes());
        expected.extend_from_slice(&checked);

        let mut wire = BytesMut::new();
        pulsar_proto::encode_send(&send, &metadata, &payload, &mut wire);
        prop_assert_eq!(&wire[..], &expected[..]);
    }

    #[test]
    fn arbitrary_bytes_decode_as_prost_does(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        same_as_prost(fast::decode_base_command(&bytes), &bytes)?;
        same_as_prost(fast::decode_message_metadata(&bytes), &bytes)?;
        same_as_prost(fast::decode_single_message_metadata(&bytes), &bytes)?;
        if let Some(by_hand) = fast::try_decode_base_command(&bytes) {
            prop_assert_eq!(Some(by_hand), pb::BaseCommand::decode(&bytes[..]).ok());
        }
        if let Some(by_hand) = fast::try_decode_message_metadata(&bytes) {
            prop_assert_eq!(Some(by_hand), pb::MessageMetadata::decode(&bytes[..]).ok());
        }
        if let Some(by_hand) = fast::try_decode_single_message_metadata(&bytes) {
            prop_assert_eq!(Some(by_hand), pb::SingleMessageMetadata::decode(&bytes[..]).ok());
        }
    }

    /// Field-shaped bytes, two levels deep, through all three decoders.
    #[test]
    fn field_soup_decodes_as_prost_does(
        inner in proptest::collection::vec(tokens(), 0..4),
        middle in proptest::collection::vec(tokens(), 0..4),
        outer in tokens(),
    ) {
        let inner: Vec<Vec<u8>> = inner.iter().map(|t| soup(t, &[])).collect();
        let middle: Vec<Vec<u8>> = middle.iter().map(|t| soup(t, &inner)).collect();
        let bytes = soup(&outer, &middle);
        same_as_prost(fast::decode_base_command(&bytes), &bytes)?;
        same_as_prost(fast::decode_message_metadata(&bytes), &bytes)?;
        same_as_prost(fast::decode_single_message_metadata(&bytes), &bytes)?;
        if let Some(by_hand) = fast::try_decode_base_command(&bytes) {
            prop_assert_eq!(Some(by_hand), pb::BaseCommand::decode(&bytes[..]).ok());
        }
        if let Some(by_hand) = fast::try_decode_message_metadata(&bytes) {
            prop_assert_eq!(Some(by_hand), pb::MessageMetadata::decode(&bytes[..]).ok());
        }
        if let Some(by_hand) = fast::try_decode_single_message_metadata(&bytes) {
            prop_assert_eq!(Some(by_hand), pb::SingleMessageMetadata::decode(&bytes[..]).ok());
        }
    }

    /// Whole frames whose command and metadata sections hold damaged encodings: the frame
    /// decoder gives prost's verdict on each section.
    #[test]
    fn frames_with_damaged_sections_decode_as_prost_does(
        kind in hot_kind(),
        seed in entropy(),
        how in (any::<u8>(), any::<usize>(), any::<u8>()),
        damage_metadata in any::<bool>(),
    ) {
        let mut e = Entropy::new(&seed);
        let (command, _) = build_command(kind, &mut e);
        let (metadata, _) = build_typed::<pb::MessageMetadata>("MessageMetadata", &mut e);
        let mut command_bytes = command.encode_to_vec();
        let mut metadata_bytes = metadata.encode_to_vec();
        if damage_metadata {
            metadata_bytes = damage(&metadata_bytes, how);
        } else {
            command_bytes = damage(&command_bytes, how);
        }
        let mut section = Vec::new();
        section.extend_from_slice(&(metadata_bytes.len() as u32).to_be_bytes());
        section.extend_from_slice(&metadata_bytes);
        section.extend_from_slice(b"payload");
        let mut wire = BytesMut::new();
        let total = 4 + command_bytes.len() + 6 + section.len();
        wire.extend_from_slice(&(total as u32).to_be_bytes());
        wire.extend_from_slice(&(command_bytes.len() as u32).to_be_bytes());
        wire.extend_from_slice(&command_bytes);
        wire.extend_from_slice(&[0x0e, 0x01]);
        wire.extend_from_slice(&crc32c::crc32c(&section).to_be_bytes());
        wire.extend_from_slice(&section);

        let decoded = FrameDecoder::default().decode(&mut wire);
        let prost_command = pb::BaseCommand::decode(&command_bytes[..]);
        let prost_metadata = pb::MessageMetadata::decode(&metadata_bytes[..]);
        match decoded {
            Ok(Some(frame)) => {
                let mut expected = prost_command.unwrap();
                // The frame decoder supplies the empty body of PING and PONG.
                match expected.kind() {
                    Some(Type::Ping) => {
                        expected.ping.get_or_insert_with(Default::default);
                    }
                    Some(Type::Pong) => {
                        expected.pong.get_or_insert_with(Default::default);
                    }
                    _ => {}
                }
                prop_assert_eq!(&frame.command, &expected);
                prop_assert_eq!(frame.payload.unwrap().metadata, prost_metadata.unwrap());
            }
            Ok(None) => prop_assert!(false, "complete frame reported partial"),
            Err(pulsar_proto::DecodeError::Protobuf { section, .. }) => {
                match section {
                    pulsar_proto::FrameSection::Command => prop_assert!(prost_command.is_err()),
                    pulsar_proto::FrameSection::Metadata => {
                        prop_assert!(prost_command.is_ok());
                        prop_assert!(prost_metadata.is_err());
                    }
                    other => prop_assert!(false, "error in {other}"),
                }
            }
            // Commands of other types or without a body after damage: prost accepted them.
            Err(_) => prop_assert!(prost_command.is_ok()),
        }
    }
}
