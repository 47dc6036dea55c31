//! The consumer state machine alone (no sockets): MESSAGE frames carrying batches of 100 messages of
//! 100 bytes go in with `handle_bytes`, every message comes out with `receive`, FLOW permits go back.
//! Reports ns per message (criterion, throughput in messages) and, before that, the bytes allocated
//! per message on the uncompressed path together with a check that the payloads are slices of the
//! received frame (consecutive payloads sit at a constant stride in one buffer: nothing is copied).
//! Each application call is followed by `poll_timeout`, as a runtime's loop does.
//!
//! Variants: messages received only; each message acknowledged individually (`ack_message`); the
//! last message of each batch acknowledged cumulatively; messages received only while 1,000 idle
//! consumers share the client (the cost of finding the next deadline). Before them, the heap held
//! per idle consumer (counting allocator; asserted against a bound).
//!
//! `CONSUMER_BENCH_PROFILE=N` runs N rounds of one variant only (for `perf`/`callgrind`, whose
//! `--toggle-collect='*profile_rounds*'` counts the rounds alone); `CONSUMER_BENCH_ACK=individual|
//! cumulative|none` picks the acknowledgements, `CONSUMER_BENCH_IDLE=K` adds K idle consumers.

mod common;

use std::alloc::System;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
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

/// How the messages of a round are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    None,
    Individual,
    Cumulative,
}

fn answer(cmd: &pb::BaseCommand) -> Option<pb::BaseCommand> {
    if let Some(answer) = common::setup_answer(cmd) {
        return Some(answer);
    }
    Some(match cmd.kind()? {
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
        let consumer = client
            .subscribe(now, "bench-topic", options(queue))
            .expect("subscribe");
        let mut conn = None;
        if drive(&mut client, now, &mut conn) != 1 {
            panic!("the consumer never became ready");
        }
        Setup {
            client,
            conn: conn.expect("a connection"),
            consumer,
            now,
        }
    }

    /// Subscribes `count` more consumers (one topic each) and waits until they are ready.
    fn add_idle(&mut self, count: usize) {
        for i in 0..count {
            let topic = format!("idle-topic-{i}");
            self.client
                .subscribe(self.now, &topic, options(1000))
                .expect("subscribe");
        }
        let ready = drive(&mut self.client, self.now, &mut Some(self.conn));
        assert_eq!(ready, count, "not every idle consumer became ready");
    }

    /// Feeds one frame and takes every message; returns how many.
    fn round(&mut self, frame: &[u8]) -> usize {
        self.round_acked(frame, Ack::None)
    }

    /// As [`round`](Self::round), acknowledging as `ack` says; every application call is followed
    /// by `poll_timeout`, as a runtime's loop does.
    fn round_acked(&mut self, frame: &[u8], ack: Ack) -> usize {
        self.client
            .handle_bytes(self.now, self.conn, frame)
            .expect("bytes");
        std::hint::black_box(self.client.poll_timeout());
        let mut n = 0;
        let mut last = None;
        while let Some(m) = self.client.receive(self.now, self.consumer) {
            std::hint::black_box(self.client.poll_timeout());
            n += 1;
            match ack {
                Ack::None => drop(m),
                Ack::Individual => {
                    self.client.ack_message(self.now, &m).expect("ack");
                    std::hint::black_box(self.client.poll_timeout());
                }
                Ack::Cumulative => last = Some(m),
            }
        }
        if let Some(m) = last {
            self.client
                .ack_cumulative_message(self.now, &m)
                .expect("ack");
            std::hint::black_box(self.client.poll_timeout());
        }
        while self.client.poll_transmit().is_some() {}
        while self.client.poll_event().is_some() {}
        n
    }
}

/// The consumer options of the bench (no partition checks: no timer but the ack grouping's).
fn options(queue: u32) -> ConsumerOptions {
    let mut opts = ConsumerOptions::new("bench").with_receiver_queue_size(queue);
    opts.partitions_update_interval = None;
    opts
}

/// Connects, answers the broker's setup commands until nothing moves; returns how many consumers
/// became ready.
fn drive(client: &mut Client, now: Instant, conn: &mut Option<ConnectionId>) -> usize {
    let decoder = FrameDecoder::default();
    let mut ready = 0;
    for _ in 0..100 {
        let mut moved = false;
        while let Some(io) = client.poll_io() {
            if let IoRequest::Connect { conn: c, .. } = io {
                client.handle_connected(now, c).expect("connected");
                *conn = Some(c);
                moved = true;
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
            moved = true;
        }
        while let Some(e) = client.poll_event() {
            ready += usize::from(matches!(e, Event::ConsumerReady { .. }));
            moved = true;
        }
        if !moved {
            break;
        }
    }
    ready
}

/// The heap an idle consumer holds: `count` consumers (one topic each, subscribed and ready) on a
/// client that already has one, with the allocator's per-block overhead estimated at 16 bytes.
fn idle_report(count: usize) {
    let mut s = Setup::new(1000);
    s.add_idle(100); // the connection's tables are past their first growth
    let region = Region::new(GLOBAL);
    s.add_idle(count);
    let st = region.change();
    let held = st.bytes_allocated as isize - st.bytes_deallocated as isize + st.bytes_reallocated;
    let blocks = st.allocations as isize - st.deallocations as isize;
    let per = held as f64 / count as f64;
    let per_blocks = blocks as f64 / count as f64;
    let with_overhead = per + 16.0 * per_blocks;
    println!(
        "consumer/idle: {per:.0} bytes held per idle consumer in {per_blocks:.1} blocks \
         ({with_overhead:.0} bytes with 16 B of allocator overhead per block; {count} consumers)"
    );
    assert!(
        with_overhead <= IDLE_BOUND,
        "an idle consumer holds {with_overhead:.0} bytes in the core (bound: {IDLE_BOUND} bytes)"
    );
}

/// The most heap (with allocator overhead) the core may hold per idle consumer: the goal is 4 KiB
/// for the whole client, runtime adapter included.
const IDLE_BOUND: f64 = 3072.0;

/// `CONSUMER_BENCH_PROFILE=N`: N rounds of one variant, then exit.
fn profile(rounds: usize) {
    let ack = match std::env::var("CONSUMER_BENCH_ACK").as_deref() {
        Ok("individual") => Ack::Individual,
        Ok("cumulative") => Ack::Cumulative,
        _ => Ack::None,
    };
    let idle = std::env::var("CONSUMER_BENCH_IDLE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut s = Setup::new(1000);
    s.add_idle(idle);
    // cumulative acks need ever newer entries (older ones count as acknowledged)
    let distinct = if ack == Ack::Cumulative {
        64 + rounds
    } else {
        64
    } as u64;
    let frames: Vec<Bytes> = (0..distinct)
        .map(|e| batch_frame(s.consumer, e, CompressionType::None))
        .collect();
    // warm-up
    for f in &frames[..64] {
        s.round_acked(f, ack);
    }
    let frames = if ack == Ack::Cumulative {
        &frames[64..]
    } else {
        &frames[..]
    };
    let n = profile_rounds(&mut s, frames, rounds, ack);
    println!("consumer/profile: {n} messages ({ack:?} acks, {idle} idle consumers)");
    std::process::exit(0);
}

#[inline(never)]
fn profile_rounds(s: &mut Setup, frames: &[Bytes], rounds: usize, ack: Ack) -> usize {
    let mut n = 0;
    for r in 0..rounds {
        n += s.round_acked(&frames[r % frames.len()], ack);
    }
    n
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
    if let Some(n) = std::env::var("CONSUMER_BENCH_PROFILE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        profile(n);
    }
    idle_report(1000);
    copies_report();
    split_report();
    let mut group = c.benchmark_group("consumer");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(5));
    for (name, codec, ack, idle) in [
        (
            "batched_100B_uncompressed",
            CompressionType::None,
            Ack::None,
            0,
        ),
        ("batched_100B_lz4", CompressionType::Lz4, Ack::None, 0),
        (
            "batched_100B_individual_acks",
            CompressionType::None,
            Ack::Individual,
            0,
        ),
        (
            "batched_100B_cumulative_acks",
            CompressionType::None,
            Ack::Cumulative,
            0,
        ),
        (
            "batched_100B_1000_idle_consumers",
            CompressionType::None,
            Ack::None,
            1000,
        ),
    ] {
        let mut s = Setup::new(1000);
        s.add_idle(idle);
        let frames: Vec<Bytes> = (0..64).map(|e| batch_frame(s.consumer, e, codec)).collect();
        let mut i = 0;
        if ack == Ack::Cumulative {
            // ever newer entries (older ones count as acknowledged), encoded outside the timing
            let consumer = s.consumer;
            let mut entry = 0u64;
            group.bench_function(name, |b| {
                b.iter_batched(
                    || {
                        entry += 1;
                        batch_frame(consumer, entry, codec)
                    },
                    |f| s.round_acked(&f, ack),
                    BatchSize::SmallInput,
                )
            });
            continue;
        }
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % frames.len();
                s.round_acked(&frames[i], ack)
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
