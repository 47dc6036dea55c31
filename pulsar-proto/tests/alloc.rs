//! Allocation counts on the hot paths, measured with a counting global allocator.
//!
//! The allocator counts every thread's allocations, so this test runs without libtest's harness
//! (`harness = false` in Cargo.toml): no other thread exists while counting is on. (Under the
//! harness, allocations outside the test thread were counted now and then and failed the
//! bounds below.)

#![allow(clippy::unwrap_used)] // tests unwrap to fail loudly

use std::alloc::System;

use bytes::{Bytes, BytesMut};
use pulsar_proto::{batch, encode_send, pb, Frame, FrameDecoder};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Runs `f` and returns its result with the number of allocations (and reallocations) and the
/// bytes they requested.
fn counted<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let region = Region::new(GLOBAL);
    let value = f();
    let stats = region.change();
    (
        value,
        stats.allocations + stats.reallocations,
        stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize,
    )
}

fn metadata() -> pb::MessageMetadata {
    pb::MessageMetadata {
        producer_name: "standalone-0-7".into(),
        sequence_id: 42,
        publish_time: 1_700_000_000_000,
        ..Default::default()
    }
}

fn send() -> pb::CommandSend {
    pb::CommandSend {
        producer_id: 1,
        sequence_id: 42,
        num_messages: Some(1),
        ..Default::default()
    }
}

fn main() {
    hot_paths_allocate_nothing_proportional_to_the_payload();
    println!("alloc: hot paths allocate nothing proportional to the payload: ok");
}

fn hot_paths_allocate_nothing_proportional_to_the_payload() {
    // Decoding a 1 MiB payload frame: the payload is a view into the read buffer.
    let payload = vec![0x5a_u8; 1024 * 1024];
    let mut wire = BytesMut::new();
    encode_send(&send(), &metadata(), &payload, &mut wire);
    let buffer = wire.as_ptr_range();
    let decoder = FrameDecoder::default();
    let (frame, allocations, bytes) = counted(|| decoder.decode(&mut wire));
    let data = frame
        .expect("valid frame")
        .expect("complete frame")
        .payload
        .expect("payload")
        .data;
    assert_eq!(data.len(), payload.len());
    assert!(data == payload);
    assert!(buffer.contains(&data.as_ptr()), "payload was copied");
    assert!(
        bytes < 1024,
        "decode allocated {bytes} bytes in {allocations} allocations"
    );
    // Boxed CommandSend, the producer name, and bytes' shared buffer header.
    assert!(allocations <= 3, "{allocations} allocations");

    // Decoding a stream of small frames from one buffer: a fixed number of allocations per frame
    // (boxed command + producer name), none for the payloads.
    let mut wire = BytesMut::new();
    for _ in 0..100 {
        encode_send(&send(), &metadata(), &payload[..100], &mut wire);
    }
    let (frames, allocations, _) = counted(|| {
        let mut frames = Vec::with_capacity(100);
        while let Ok(Some(frame)) = decoder.decode(&mut wire) {
            frames.push(frame);
        }
        frames
    });
    assert_eq!(frames.len(), 100);
    // Plus the `frames` vector and the read buffer's shared header.
    assert!(
        allocations <= 2 * 100 + 2,
        "{allocations} allocations for 100 frames"
    );

    // `decode_into` with one frame kept across frames: once the first SEND has allocated the boxed
    // command and the producer name (and the read buffer its shared header), later SENDs from the
    // same producer allocate nothing.
    let mut wire = BytesMut::new();
    for _ in 0..100 {
        encode_send(&send(), &metadata(), &payload[..100], &mut wire);
    }
    let mut frame = Frame::empty();
    let (first, allocations, _) = counted(|| decoder.decode_into(&mut wire, &mut frame));
    assert!(first.unwrap());
    assert!(
        allocations <= 3,
        "{allocations} allocations for the first frame"
    );
    let (decoded, allocations, _) = counted(|| {
        let mut n = 0;
        while let Ok(true) = decoder.decode_into(&mut wire, &mut frame) {
            n += 1;
        }
        n
    });
    assert_eq!(decoded, 99);
    assert_eq!(frame.payload.as_ref().unwrap().metadata, metadata());
    assert_eq!(
        allocations, 0,
        "decode_into allocated {allocations} times for 99 frames"
    );

    // Encoding into a buffer with room allocates nothing.
    let mut out = BytesMut::with_capacity(64 * 1024);
    let (send, metadata) = (send(), metadata());
    let ((), allocations, _) = counted(|| {
        for _ in 0..100 {
            encode_send(&send, &metadata, &payload[..100], &mut out);
        }
    });
    assert_eq!(allocations, 0, "encode_send allocated");
    let flow = pb::BaseCommand::from(pb::CommandFlow {
        consumer_id: 1,
        message_permits: 500,
    });
    let ((), allocations, _) = counted(|| pulsar_proto::encode_command(&flow, &mut out));
    assert_eq!(allocations, 0, "encode_command allocated");

    // Splitting a batch: entries are views, metadata without strings allocates nothing.
    let mut batch_buf = BytesMut::new();
    for i in 0..1000 {
        let meta = pb::SingleMessageMetadata {
            payload_size: 100,
            sequence_id: Some(i),
            ..Default::default()
        };
        batch::encode_entry(&meta, &payload[..100], &mut batch_buf);
    }
    let batch_bytes: Bytes = batch_buf.freeze();
    let range = batch_bytes.as_ptr_range();
    let (entries, allocations, _) = counted(|| {
        let mut n = 0;
        for entry in batch::split(batch_bytes.clone(), 1000) {
            let entry = entry.expect("valid entry");
            assert!(range.contains(&entry.payload.as_ptr()));
            n += 1;
        }
        n
    });
    assert_eq!(entries, 1000);
    assert!(
        allocations <= 1,
        "{allocations} allocations to split 1000 entries"
    );

    // Rejecting an oversized frame allocates nothing.
    let mut huge = BytesMut::from(&[0xff_u8, 0xff, 0xff, 0xff][..]);
    let (result, allocations, _) = counted(|| decoder.decode(&mut huge).is_err());
    assert!(result);
    assert_eq!(allocations, 0);
}
