//! Feeds arbitrary bytes to the frame decoder.
//!
//! Oracles: no panic; the buffer never grows; a fatal error consumes nothing; a decoded frame
//! re-encodes to bytes that decode to the same frame; `decode_into`, reusing one frame that starts
//! full of another frame's fields, gives exactly what `decode` gives, frame after frame.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pulsar_proto::{pb, Frame, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    // Small limit so that the size check is exercised often, default limit for the rest.
    for decoder in [FrameDecoder::new(64), FrameDecoder::default()] {
        let mut buf = BytesMut::from(data);
        let mut reused_buf = BytesMut::from(data);
        let mut reused = dirty_frame();
        let capacity = buf.capacity();
        loop {
            let before = buf.len();
            let result = decoder.decode(&mut buf);
            let reused_result = decoder.decode_into(&mut reused_buf, &mut reused);
            assert_eq!(buf.len(), reused_buf.len(), "decode_into consumed differently");
            match (&result, &reused_result) {
                (Ok(Some(frame)), Ok(true)) => assert_eq!(frame, &reused, "decode_into differs"),
                (Ok(None), Ok(false)) => {}
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                _ => panic!("decode {result:?} but decode_into {reused_result:?}"),
            }
            match result {
                Ok(Some(frame)) => {
                    assert!(buf.len() < before);
                    check_reencode(&frame);
                }
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
            assert!(buf.capacity() <= capacity);
        }
    }
});

/// A frame with many fields set (a MESSAGE with metadata, properties and broker entry metadata),
/// so that anything `decode_into` fails to reset shows up as a difference.
fn dirty_frame() -> Frame {
    let command = pb::BaseCommand::from(pb::CommandMessage {
        consumer_id: 7,
        message_id: pb::MessageIdData {
            ledger_id: 1,
            entry_id: 2,
            batch_index: Some(3),
            ack_set: vec![5, 6],
            ..Default::default()
        },
        redelivery_count: Some(4),
        ack_set: vec![9],
        consumer_epoch: Some(1),
    });
    let metadata = pb::MessageMetadata {
        producer_name: "dirty".into(),
        sequence_id: 11,
        publish_time: 12,
        properties: vec![pb::KeyValue {
            key: "k".into(),
            value: "v".into(),
        }],
        partition_key: Some("key".into()),
        num_messages_in_batch: Some(2),
        ..Default::default()
    };
    let entry = pb::BrokerEntryMetadata {
        broker_timestamp: Some(1),
        index: Some(2),
    };
    let mut wire = BytesMut::new();
    pulsar_proto::encode_payload_command_with_broker_entry_metadata(
        &command,
        &entry,
        &metadata,
        &Bytes::from_static(b"dirty payload"),
        &mut wire,
    );
    FrameDecoder::default()
        .decode(&mut wire)
        .expect("the dirty frame decodes")
        .expect("the dirty frame is complete")
}

fn check_reencode(frame: &Frame) {
    let mut wire = BytesMut::new();
    match &frame.payload {
        None => pulsar_proto::encode_command(&frame.command, &mut wire),
        Some(payload) => match &payload.broker_entry_metadata {
            None => pulsar_proto::encode_payload_command(
                &frame.command,
                &payload.metadata,
                &payload.data,
                &mut wire,
            ),
            Some(entry) => pulsar_proto::encode_payload_command_with_broker_entry_metadata(
                &frame.command,
                entry,
                &payload.metadata,
                &payload.data,
                &mut wire,
            ),
        },
    }
    if let (Some(pb::base_command::Type::Send), Some(payload)) =
        (frame.command.kind(), &frame.payload)
    {
        if let Some(send) = &frame.command.send {
            let mut fast = BytesMut::new();
            pulsar_proto::encode_send(send, &payload.metadata, &payload.data, &mut fast);
            assert_eq!(fast, wire, "encode_send differs from the generic encoder");
        }
    }
    let again = FrameDecoder::new(usize::MAX / 2)
        .decode(&mut wire)
        .expect("re-encoded frame decodes")
        .expect("re-encoded frame is complete");
    assert!(wire.is_empty());
    assert_eq!(&again, frame);
}
