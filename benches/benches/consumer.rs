//! The consumer state machine alone (no sockets): MESSAGE frames carrying batches of 100 messages of
//! 100 bytes go in with `handle_bytes`, every message comes out with `receive`, FLOW permits go back.
//! Reports ns per message (criterion, throughput in messages) and, before that, the bytes allocated
//! per message on the uncompressed path together with a check that the payloads are slices of the
//! received frame (consecutive payloads sit at a constant stride in one buffer: nothing is copied).

use std::alloc::System;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pulsar_core::compression::{compress, CompressionType};
use pulsar_core::{
    Client, ClientConfig, ConnectionId, ConsumerId, ConsumerOptions, Event, IoRequest,
};
use pulsar_proto::pb::{self, base_command::Type};
use pulsar_proto::{encode_command, encode_payload_command, FrameDecoder};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BATCH: usize = 100;
const SIZE: usize = 100;

/// A client with one consumer subscribed through an in-memory broker.
struct Setup {
    client: Client,
    conn: ConnectionId,
    consumer: ConsumerId,
    now: Instant,
}

fn answer(cmd: &pb::BaseCommand) -> Option<pb::BaseCommand> {
    Some(match cmd.kind()? {
        Type::Connect => pb::CommandConnected {
            server_version: "bench".into(),
            protocol_version: Some(21),
            ..Default::default()
        }
        .into(),
        Type::Lookup => pb::CommandLookupTopicResponse {
            broker_service_url: Some("pulsar://bench:6650".into()),
            response: Some(1),
            request_id: cmd.lookup_topic.as_ref()?.request_id,
            authoritative: Some(true),
            ..Default::default()
        }
        .into(),
        Type::PartitionedMetadata => pb::CommandPartitionedTopicMetadataResponse {
            partitions: Some(0),
            request_id: cmd.partition_metadata.as_ref()?.request_id,
            response: Some(0),
            ..Default::default()
        }
        .into(),
        Type::Subscribe => pb::CommandSuccess {
            request_id: cmd.subscribe.as_ref()?.request_id,
            ..Default::default()
        }
        .into(),
        _ => return None,
    })
}

impl Setup {
    fn new(queue: u32) -> Setup {
        let now = Instant::now();
        let mut client =
            Client::new(ClientConfig::new("pulsar://bench:6650"), now).expect("config");
        let mut opts = ConsumerOptions::new("bench").with_receiver_queue_size(queue);
        opts.partitions_update_interval = None;
        let consumer = client
            .subscribe(now, "bench-topic", opts)
            .expect("subscribe");
        let decoder = FrameDecoder::default();
        let mut conn = None;
        for _ in 0..100 {
            while let Some(io) = client.poll_io() {
                if let IoRequest::Connect { conn: c, .. } = io {
                    client.handle_connected(now, c).expect("connected");
                    conn = Some(c);
                }
            }
            let mut replies = Vec::new();
            while let Some(t) = client.poll_transmit() {
                let mut buf = BytesMut::from(&t.data[..]);
                while let Ok(Some(frame)) = decoder.decode(&mut buf) {
                    if let Some(a) = answer(&frame.command) {
                        let mut out = BytesMut::new();
                        encode_command(&a, &mut out);
                        replies.push((t.conn, out));
                    }
                }
            }
            for (c, r) in replies {
                client.handle_bytes(now, c, &r).expect("bytes");
            }
            let mut ready = false;
            while let Some(e) = client.poll_event() {
                ready |= matches!(e, Event::ConsumerReady { .. });
            }
            if ready {
                return Setup {
                    client,
                    conn: conn.expect("a connection"),
                    consumer,
                    now,
                };
            }
        }
        panic!("the consumer never became ready");
    }

    /// Feeds one frame and takes every message; returns how many.
    fn round(&mut self, frame: &[u8]) -> usize {
        self.client
            .handle_bytes(self.now, self.conn, frame)
            .expect("bytes");
        let mut n = 0;
        while let Some(m) = self.client.receive(self.now, self.consumer) {
            n += 1;
            drop(m);
        }
        while self.client.poll_transmit().is_some() {}
        while self.client.poll_event().is_some() {}
        n
    }
}

/// A MESSAGE frame for consumer `id` with a batch of `BATCH` messages of `SIZE` bytes.
fn batch_frame(id: ConsumerId, entry: u64, codec: CompressionType) -> Bytes {
    let mut data = BytesMut::new();
    for i in 0..BATCH {
        let single = pb::SingleMessageMetadata {
            payload_size: SIZE as i32,
            sequence_id: Some(i as u64),
            ..Default::default()
        };
        let payload = vec![(i % 251) as u8; SIZE];
        pulsar_proto::batch::encode_entry(&single, &payload, &mut data);
    }
    let mut meta = pb::MessageMetadata {
        producer_name: "bench-producer".into(),
        sequence_id: entry,
        publish_time: 1,
        num_messages_in_batch: Some(BATCH as i32),
        ..Default::default()
    };
    let body: Vec<u8> = if codec == CompressionType::None {
        data.to_vec()
    } else {
        let mut out = Vec::new();
        compress(codec, &data, &mut out).expect("compress");
        meta.compression = Some(codec.to_protocol());
        meta.uncompressed_size = Some(data.len() as u32);
        out
    };
    let cmd: pb::BaseCommand = pb::CommandMessage {
        consumer_id: id.get(),
        message_id: pb::MessageIdData {
            ledger_id: 1,
            entry_id: entry,
            ..Default::default()
        },
        ..Default::default()
    }
    .into();
    let mut out = BytesMut::new();
    encode_payload_command(&cmd, &meta, &body, &mut out);
    out.freeze()
}

/// Bytes allocated per message on the uncompressed path, and the no-copy check.
fn copies_report() {
    let mut s = Setup::new(1000);
    let frames: Vec<Bytes> = (0..200)
        .map(|e| batch_frame(s.consumer, e, CompressionType::None))
        .collect();
    // warm up (buffers reach their working size)
    for f in &frames[..100] {
        s.round(f);
    }
    // stride check: the payloads of one batch are consecutive slices of one buffer
    s.client
        .handle_bytes(s.now, s.conn, &frames[100])
        .expect("bytes");
    let msgs: Vec<_> = std::iter::from_fn(|| s.client.receive(s.now, s.consumer)).collect();
    assert_eq!(msgs.len(), BATCH);
    let ptrs: Vec<usize> = msgs.iter().map(|m| m.payload.as_ptr() as usize).collect();
    let stride = ptrs[1] - ptrs[0];
    assert!(
        ptrs.windows(2).all(|w| w[1] - w[0] == stride),
        "payloads are not slices of one buffer"
    );
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.payload[0], (i % 251) as u8);
    }
    drop(msgs);
    while s.client.poll_transmit().is_some() {}
    let region = Region::new(GLOBAL);
    let mut n = 0;
    for f in &frames[101..] {
        n += s.round(f);
    }
    let st = region.change();
    println!(
        "consumer (uncompressed, batches of {BATCH} x {SIZE} B): {:.1} bytes and {:.3} allocations per \
         message over {n} messages (a payload copy would be >= {SIZE} bytes); payloads at a constant \
         stride of {stride} bytes in the frame buffer",
        st.bytes_allocated as f64 / n as f64,
        st.allocations as f64 / n as f64,
    );
}

fn bench(c: &mut Criterion) {
    copies_report();
    split_report();
    let mut group = c.benchmark_group("consumer");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(5));
    for (name, codec) in [
        ("batched_100B_uncompressed", CompressionType::None),
        ("batched_100B_lz4", CompressionType::Lz4),
    ] {
        let mut s = Setup::new(1000);
        let frames: Vec<Bytes> = (0..64).map(|e| batch_frame(s.consumer, e, codec)).collect();
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % frames.len();
                s.round(&frames[i])
            })
        });
    }
    group.finish();
}

/// Where the time goes: frame intake (`handle_bytes`) versus taking the messages (`receive`).
fn split_report() {
    let mut s = Setup::new(1000);
    let frames: Vec<Bytes> = (0..64)
        .map(|e| batch_frame(s.consumer, e, CompressionType::None))
        .collect();
    let rounds = 20_000;
    let (mut intake, mut take) = (Duration::ZERO, Duration::ZERO);
    for r in 0..rounds {
        let f = &frames[r % frames.len()];
        let t0 = Instant::now();
        s.client.handle_bytes(s.now, s.conn, f).expect("bytes");
        let t1 = Instant::now();
        while let Some(m) = s.client.receive(s.now, s.consumer) {
            drop(m);
        }
        let t2 = Instant::now();
        while s.client.poll_transmit().is_some() {}
        while s.client.poll_event().is_some() {}
        intake += t1 - t0;
        take += t2 - t1;
    }
    let per = |d: Duration| d.as_nanos() as f64 / (rounds * BATCH) as f64;
    println!(
        "consumer (uncompressed): intake {:.0} ns/message (handle_bytes: copy in, CRC32C, decode, \
         split), receive {:.0} ns/message",
        per(intake),
        per(take)
    );
}

criterion_group! {
    name = benches;
    // plots off: the machine has no fonts for criterion's charts
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
