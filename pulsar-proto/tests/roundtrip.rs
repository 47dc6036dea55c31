//! Property tests: every command type, payload frames and batches survive encode → decode
//! unchanged, and the hand-written SEND encoder matches the generic one byte for byte.

#![allow(clippy::unwrap_used)] // tests unwrap to fail loudly

mod common;

use bytes::{Bytes, BytesMut};
use common::{assert_same_as_dynamic, build_command, build_typed, Entropy};
use proptest::prelude::*;
use pulsar_proto::{batch, pb, FrameDecoder};

fn entropy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..400)
}

fn command_kind() -> impl Strategy<Value = pb::base_command::Type> {
    proptest::sample::select(pb::BaseCommand::all_types().to_vec())
}

fn decode_one(wire: &mut BytesMut) -> pulsar_proto::Frame {
    let frame = FrameDecoder::default()
        .decode(wire)
        .expect("valid frame")
        .expect("complete frame");
    assert!(wire.is_empty(), "{} bytes left over", wire.len());
    frame
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_command_type_round_trips(kind in command_kind(), seed in entropy()) {
        let (command, dynamic) = build_command(kind, &mut Entropy::new(&seed));
        prop_assert_eq!(command.kind(), Some(kind));
        prop_assert!(command.has_body(kind));
        // The generated types keep every field the descriptor knows.
        assert_same_as_dynamic(&command, &dynamic);

        let mut wire = BytesMut::new();
        pulsar_proto::encode_command(&command, &mut wire);
        let encoded = wire.clone();
        let frame = decode_one(&mut wire);
        prop_assert_eq!(&frame.command, &command);
        prop_assert!(frame.payload.is_none());

        // Re-encoding the decoded command gives the same bytes.
        let mut again = BytesMut::new();
        pulsar_proto::encode_command(&frame.command, &mut again);
        prop_assert_eq!(again, encoded);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn payload_frames_round_trip(
        seed in entropy(),
        payload in proptest::collection::vec(any::<u8>(), 0..3000),
        with_entry_metadata in any::<bool>(),
        as_message in any::<bool>(),
    ) {
        let mut e = Entropy::new(&seed);
        let kind = if as_message { pb::base_command::Type::Message } else { pb::base_command::Type::Send };
        let (command, _) = build_command(kind, &mut e);
        let (metadata, metadata_dynamic) = build_typed::<pb::MessageMetadata>("MessageMetadata", &mut e);
        assert_same_as_dynamic(&metadata, &metadata_dynamic);
        let (entry, _) = build_typed::<pb::BrokerEntryMetadata>("BrokerEntryMetadata", &mut e);

        let mut wire = BytesMut::new();
        if with_entry_metadata {
            pulsar_proto::encode_payload_command_with_broker_entry_metadata(
                &command, &entry, &metadata, &payload, &mut wire,
            );
        } else {
            pulsar_proto::encode_payload_command(&command, &metadata, &payload, &mut wire);
        }
        let frame = decode_one(&mut wire);
        prop_assert_eq!(&frame.command, &command);
        let got = frame.payload.expect("payload");
        prop_assert_eq!(got.metadata, metadata);
        prop_assert_eq!(&got.data[..], &payload[..]);
        prop_assert_eq!(got.broker_entry_metadata, with_entry_metadata.then_some(entry));
    }

    #[test]
    fn encode_send_matches_the_generic_encoder(
        seed in entropy(),
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut e = Entropy::new(&seed);
        let (send, _) = build_typed::<pb::CommandSend>("CommandSend", &mut e);
        let (metadata, _) = build_typed::<pb::MessageMetadata>("MessageMetadata", &mut e);

        let mut fast = BytesMut::from(&b"prefix"[..]);
        pulsar_proto::encode_send(&send, &metadata, &payload, &mut fast);
        let mut generic = BytesMut::from(&b"prefix"[..]);
        pulsar_proto::encode_payload_command(
            &pb::BaseCommand::from(send.clone()), &metadata, &payload, &mut generic,
        );
        prop_assert_eq!(&fast, &generic);

        let _ = fast.split_to(6);
        let frame = decode_one(&mut fast);
        prop_assert_eq!(frame.command.send.as_deref(), Some(&send));
    }

    #[test]
    fn the_head_of_a_send_frame_followed_by_its_payload_is_the_whole_frame(
        seed in entropy(),
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut e = Entropy::new(&seed);
        let (send, _) = build_typed::<pb::CommandSend>("CommandSend", &mut e);
        let (metadata, _) = build_typed::<pb::MessageMetadata>("MessageMetadata", &mut e);

        let mut whole = BytesMut::from(&b"prefix"[..]);
        pulsar_proto::encode_send(&send, &metadata, &payload, &mut whole);
        let mut head = BytesMut::from(&b"prefix"[..]);
        pulsar_proto::encode_send_head(&send, &metadata, &payload, &mut head);
        prop_assert_eq!(head.len() + payload.len(), whole.len());
        head.extend_from_slice(&payload);
        prop_assert_eq!(&head, &whole);
    }

    #[test]
    fn batches_round_trip(
        seed in entropy(),
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..40),
    ) {
        let mut e = Entropy::new(&seed);
        let mut entries = Vec::new();
        let mut wire = BytesMut::new();
        for payload in &payloads {
            let (mut meta, _) = build_typed::<pb::SingleMessageMetadata>("SingleMessageMetadata", &mut e);
            meta.payload_size = payload.len() as i32;
            batch::encode_entry(&meta, payload, &mut wire);
            entries.push((meta, payload.clone()));
        }
        let wire = wire.freeze();
        let range = wire.as_ptr_range();
        let split: Vec<batch::BatchEntry> = batch::split(wire.clone(), entries.len() as u32)
            .collect::<Result<_, _>>()
            .expect("valid batch");
        prop_assert_eq!(split.len(), entries.len());
        for (got, (meta, payload)) in split.iter().zip(&entries) {
            prop_assert_eq!(&got.metadata, meta);
            prop_assert_eq!(&got.payload[..], &payload[..]);
            // The payload is a view into the batch buffer.
            if !payload.is_empty() {
                prop_assert!(range.contains(&got.payload.as_ptr()));
            }
        }
    }

    #[test]
    fn split_never_panics_and_stops_after_an_error(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        count in any::<u32>(),
    ) {
        let mut entries = batch::split(Bytes::from(data.clone()), count);
        let mut seen = 0u64;
        while let Some(item) = entries.next() {
            seen += 1;
            if item.is_err() {
                prop_assert!(entries.next().is_none());
                break;
            }
        }
        // Each entry consumes at least 4 bytes, plus one error at most.
        prop_assert!(seen <= u64::from(count).min(data.len() as u64 / 4 + 1));
    }
}
