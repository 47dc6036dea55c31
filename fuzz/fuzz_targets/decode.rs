//! Feeds arbitrary bytes to the frame decoder.
//!
//! Oracles: no panic; the buffer never grows; a fatal error consumes nothing; a decoded frame
//! re-encodes to bytes that decode to the same frame.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pulsar_proto::{pb, Frame, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    // Small limit so that the size check is exercised often, default limit for the rest.
    for decoder in [FrameDecoder::new(64), FrameDecoder::default()] {
        let mut buf = BytesMut::from(data);
        let capacity = buf.capacity();
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
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
