//! Producer compression (every codec, batched or not) and chunking (boundaries, metadata, receipts,
//! resend), and the size limit without chunking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod producer_util;
mod support;

use std::time::Duration;

use bytes::Bytes;
use producer_util::{completions, hold, ready, receipt, sent, sim_at};
use prost::Message as _;
use pulsar_core::compression::CompressionType;
use pulsar_core::{BatchingOptions, Event, MessageId, OutgoingMessage, ProducerOptions, SendError};
use support::{Sim, SERVICE};

fn text(n: usize) -> Bytes {
    let words = ["pulsar ", "broker ", "topic ", "message ", "batch "];
    let mut s = String::new();
    let mut i = 0usize;
    while s.len() < n {
        s.push_str(words[i % words.len()]);
        i = i.wrapping_mul(31).wrapping_add(7) % 1000;
    }
    s.truncate(n);
    Bytes::from(s)
}

/// Noise that does not compress.
fn noise(n: usize) -> Bytes {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

#[test]
fn every_codec_compresses_single_messages_and_batches() {
    for kind in CompressionType::ALL {
        let mut sim = sim_at(0);
        let single = ready(
            &mut sim,
            "single",
            ProducerOptions::default().with_compression(kind),
        );
        let batched = ready(
            &mut sim,
            "batched",
            ProducerOptions::default()
                .with_compression(kind)
                .with_batching(BatchingOptions::enabled()),
        );
        let payload = text(5_000);
        sim.client
            .send_payload(sim.now, single, payload.clone())
            .unwrap();
        for i in 0..10 {
            sim.client
                .send_payload(sim.now, batched, text(100 + i))
                .unwrap();
        }
        sim.run_for(Duration::from_millis(1));
        let s = sent(&sim);
        assert_eq!(s.len(), 2, "{kind}");
        for x in &s {
            if kind == CompressionType::None {
                assert_eq!(x.metadata.compression, None);
                assert_eq!(x.metadata.uncompressed_size, None);
            } else {
                assert_eq!(x.metadata.compression, Some(kind.to_protocol()), "{kind}");
                let plain = x.plain();
                assert_eq!(
                    x.metadata.uncompressed_size,
                    Some(plain.len() as u32),
                    "{kind}"
                );
                assert!(x.payload.len() < plain.len(), "{kind} compresses text");
            }
        }
        assert_eq!(s[0].plain(), payload, "{kind}");
        let entries = s[1].entries();
        assert_eq!(entries.len(), 10);
        for (i, (_, p)) in entries.iter().enumerate() {
            assert_eq!(p, &text(100 + i), "{kind}");
        }
        assert_eq!(completions(&sim).len(), 11);
        assert!(completions(&sim).iter().all(|c| c.1.is_ok()));
    }
}

#[test]
fn without_chunking_a_message_over_the_brokers_limit_is_a_typed_error() {
    let mut sim = sim_at(0);
    sim.broker(SERVICE).max_message_size = Some(10_000);
    let p = ready(&mut sim, "t", ProducerOptions::default());
    assert_eq!(
        sim.client.send_payload(sim.now, p, noise(10_001)),
        Err(SendError::MessageTooBig {
            size: 10_001,
            max: 10_000
        })
    );
    // the frame counts: metadata + payload must fit
    let e = sim.client.send_payload(sim.now, p, noise(9_999));
    assert!(
        matches!(e, Err(SendError::MessageTooBig { max: 10_000, size }) if size > 10_000),
        "{e:?}"
    );
    sim.client.send_payload(sim.now, p, noise(9_900)).unwrap();
    // compressed, a large compressible payload fits
    let z = ready(
        &mut sim,
        "z",
        ProducerOptions::default().with_compression(CompressionType::Lz4),
    );
    sim.client.send_payload(sim.now, z, text(50_000)).unwrap();
    assert!(matches!(
        sim.client.send_payload(sim.now, z, noise(50_000)),
        Err(SendError::MessageTooBig { .. })
    ));
    sim.run_until_idle();
    assert_eq!(sent(&sim).len(), 2);
    assert_eq!(completions(&sim).len(), 2);
}

fn check_chunks(sim: &Sim, payload: &Bytes, limit: usize, name: &str, seq: u64) -> usize {
    let s = sent(sim);
    let chunks: Vec<_> = s.iter().filter(|x| x.send.is_chunk == Some(true)).collect();
    let n = chunks.len();
    assert!(n >= 2);
    let mut joined = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let m = &c.metadata;
        assert!(
            m.encoded_len() + c.payload.len() <= limit,
            "chunk {i}: {} > {limit}",
            m.encoded_len() + c.payload.len()
        );
        assert_eq!(c.send.sequence_id, seq);
        assert_eq!(m.sequence_id, seq);
        assert_eq!(m.uuid.as_deref(), Some(format!("{name}-{seq}").as_str()));
        assert_eq!(m.chunk_id, Some(i as i32));
        assert_eq!(m.num_chunks_from_msg, Some(n as i32));
        assert_eq!(m.total_chunk_msg_size, Some(payload.len() as i32));
        assert_eq!(m.num_messages_in_batch, None);
        joined.extend_from_slice(&c.payload);
    }
    assert_eq!(&joined[..], &payload[..]);
    n
}

#[test]
fn chunks_respect_the_chunk_size_and_complete_on_the_last_receipt() {
    let mut sim = sim_at(0);
    let held = hold(&mut sim);
    let mut opts = ProducerOptions::with_name("chunky").with_chunking();
    opts.chunk_max_size = Some(1_000);
    let p = ready(&mut sim, "t", opts);
    let small = sim.client.send_payload(sim.now, p, noise(100)).unwrap();
    let payload = noise(2_500);
    let big = sim
        .client
        .send(
            sim.now,
            p,
            OutgoingMessage::new(payload.clone())
                .with_key("k")
                .with_property("p", "v"),
        )
        .unwrap();
    sim.run_until_idle();
    let n = check_chunks(&sim, &payload, 1_000, "chunky", 1);
    assert_eq!(n, 3);
    let s = sent(&sim);
    assert_eq!(s[0].send.is_chunk, None, "small messages are not chunked");
    for c in &s[1..] {
        assert_eq!(c.metadata.partition_key.as_deref(), Some("k"));
        assert_eq!(c.metadata.properties.len(), 1);
    }
    // receipts: one per chunk, same sequence id; the message completes with the last one
    let conn = sim.conn_ids()[0];
    sim.inject(conn, receipt(p.get(), 0, 7, 10));
    sim.inject(conn, receipt(p.get(), 1, 7, 11));
    sim.inject(conn, receipt(p.get(), 1, 7, 12));
    assert_eq!(completions(&sim).len(), 1);
    sim.inject(conn, receipt(p.get(), 1, 7, 13));
    assert_eq!(
        completions(&sim),
        vec![
            (small, Ok(MessageId::new(7, 10, -1))),
            (big, Ok(MessageId::new(7, 13, -1)))
        ]
    );
    held.held.borrow_mut().clear();
}

#[test]
fn chunking_follows_the_brokers_max_message_size_and_compresses_first() {
    let mut sim = sim_at(0);
    sim.broker(SERVICE).max_message_size = Some(4_096);
    let opts = ProducerOptions::with_name("c")
        .with_chunking()
        .with_compression(CompressionType::Zstd);
    let p = ready(&mut sim, "t", opts);
    let payload = noise(20_000);
    let s = sim
        .client
        .send_payload(sim.now, p, payload.clone())
        .unwrap();
    sim.run_until_idle();
    let x = sent(&sim);
    assert!(x.len() >= 5);
    // all but the last chunk are full
    for c in &x[..x.len() - 1] {
        assert!(c.metadata.encoded_len() + c.payload.len() > 4_096 - 1_024 - 16);
    }
    // every chunk carries the codec and the original size; the chunks join into the compressed
    // payload, which decompresses to the original
    let mut joined = Vec::new();
    for c in &x {
        assert_eq!(c.metadata.compression, Some(3));
        assert_eq!(c.metadata.uncompressed_size, Some(20_000));
        // 1 KiB of headroom under the broker's limit (the bookie's entry header)
        assert!(c.metadata.encoded_len() + c.payload.len() <= 4_096 - 1_024);
        joined.extend_from_slice(&c.payload);
    }
    assert_eq!(
        x[0].metadata.total_chunk_msg_size,
        Some(joined.len() as i32)
    );
    let plain =
        pulsar_core::compression::decompress(CompressionType::Zstd, &joined, 20_000, 1 << 20)
            .unwrap();
    assert_eq!(plain, payload);
    assert!(matches!(completions(&sim)[..], [(id, Ok(_))] if id == s));
}

#[test]
fn pending_chunks_are_resent_in_order_after_a_reconnection() {
    let mut sim = sim_at(0);
    let held = hold(&mut sim);
    let mut opts = ProducerOptions::with_name("r").with_chunking();
    opts.chunk_max_size = Some(600);
    let p = ready(&mut sim, "t", opts);
    let payload = noise(1_500);
    let s = sim
        .client
        .send_payload(sim.now, p, payload.clone())
        .unwrap();
    sim.run_until_idle();
    let first = sent(&sim);
    let n = first.len();
    assert!(n >= 3);
    let conn = sim.conn_ids()[0];
    sim.inject(conn, receipt(p.get(), 0, 7, 0)); // chunk 0 stored
    held.auto.set(true);
    sim.broker_close(conn);
    sim.run_until(Duration::from_secs(5), |e| {
        matches!(e, Event::ProducerReconnected { .. })
    });
    sim.run_until_idle();
    let again: Vec<_> = sent(&sim).into_iter().skip(n).collect();
    assert_eq!(again.len(), n - 1, "chunk 0 was acknowledged");
    for (a, b) in again.iter().zip(&first[1..]) {
        assert_eq!(a.metadata, b.metadata);
        assert_eq!(a.payload, b.payload);
        assert_eq!(a.send.is_chunk, Some(true));
    }
    assert!(matches!(completions(&sim)[..], [(id, Ok(_))] if id == s));
}
