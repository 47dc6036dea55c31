//! The producer state machine alone (no sockets, no clock): messages of 100 bytes go in with
//! `send`, the SEND frames come out of `poll_transmit`, an in-memory broker answers every SEND with
//! a SEND_RECEIPT (it reads the command of each frame and skips the payload), and every
//! `SendCompleted` event is drained. Reports ns per message (criterion, throughput in messages) and,
//! before that, allocations and bytes allocated per message in steady state (counting allocator).
//!
//! Variants: batched (1000 messages per batch, the goal: ≤ 100 ns per message), batched with
//! LZ4, and unbatched (one SEND per message) for reference.

use std::alloc::System;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message as _;
use pulsar_core::compression::CompressionType;
use pulsar_core::{
    BatchingOptions, Client, ClientConfig, ConnectionId, Event, IoRequest, OutgoingMessage,
    ProducerId, ProducerOptions,
};
use pulsar_proto::encode_command;
use pulsar_proto::pb::{self, base_command::Type};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SIZE: usize = 100;
const BATCH: usize = 1000;

/// The broker's answer to a setup command.
fn answer(cmd: &pb::BaseCommand, entry: &mut u64) -> Option<pb::BaseCommand> {
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
        Type::Producer => pb::CommandProducerSuccess {
            request_id: cmd.producer.as_ref()?.request_id,
            producer_name: "bench-producer".into(),
            last_sequence_id: Some(-1),
            ..Default::default()
        }
        .into(),
        Type::Send => {
            let s = cmd.send.as_ref()?;
            *entry += 1;
            pb::CommandSendReceipt {
                producer_id: s.producer_id,
                sequence_id: s.sequence_id,
                highest_sequence_id: s.highest_sequence_id,
                message_id: Some(pb::MessageIdData {
                    ledger_id: 1,
                    entry_id: *entry,
                    ..Default::default()
                }),
            }
            .into()
        }
        _ => return None,
    })
}

/// A client with one ready producer and an in-memory broker.
struct Setup {
    client: Client,
    conn: Option<ConnectionId>,
    producer: ProducerId,
    now: Instant,
    payload: Bytes,
    entry: u64,
    /// Receipts to deliver (reused).
    replies: BytesMut,
    completed: usize,
}

impl Setup {
    fn new(options: ProducerOptions) -> Setup {
        let now = Instant::now();
        let mut client =
            Client::new(ClientConfig::new("pulsar://bench:6650"), now).expect("config");
        let producer = client
            .create_producer(now, "bench-topic", options)
            .expect("producer");
        let mut s = Setup {
            client,
            conn: None,
            producer,
            now,
            payload: Bytes::from(vec![7u8; SIZE]),
            entry: 0,
            replies: BytesMut::with_capacity(64 * 1024),
            completed: 0,
        };
        for _ in 0..100 {
            while let Some(io) = s.client.poll_io() {
                if let IoRequest::Connect { conn: c, .. } = io {
                    s.client.handle_connected(now, c).expect("connected");
                    s.conn = Some(c);
                }
            }
            s.exchange();
            let mut ready = false;
            while let Some(e) = s.client.poll_event() {
                ready |= matches!(e, Event::ProducerReady { .. });
            }
            if ready {
                return s;
            }
        }
        panic!("the producer never became ready");
    }

    /// Moves every transmit to the broker and its answers back.
    fn exchange(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            let mut data = t.data;
            while data.len() >= 8 {
                let total = u32::from_be_bytes(data[..4].try_into().expect("4 bytes")) as usize;
                let cmd_len = u32::from_be_bytes(data[4..8].try_into().expect("4 bytes")) as usize;
                let cmd = pb::BaseCommand::decode(&data[8..8 + cmd_len]).expect("command");
                data.advance(4 + total);
                if let Some(a) = answer(&cmd, &mut self.entry) {
                    encode_command(&a, &mut self.replies);
                }
            }
        }
        if let (false, Some(conn)) = (self.replies.is_empty(), self.conn) {
            self.client
                .handle_bytes(self.now, conn, &self.replies)
                .expect("bytes");
            self.replies.clear();
        }
    }

    /// Sends `n` messages, lets the broker answer, drains the completions.
    fn round(&mut self, n: usize) {
        for _ in 0..n {
            self.client
                .send(
                    self.now,
                    self.producer,
                    OutgoingMessage::new(self.payload.clone()),
                )
                .expect("send");
        }
        self.exchange();
        while let Some(e) = self.client.poll_event() {
            if let Event::SendCompleted { result, .. } = e {
                debug_assert!(result.is_ok());
                self.completed += 1;
            }
        }
    }
}

fn batched(codec: CompressionType) -> ProducerOptions {
    let mut o = ProducerOptions::default()
        .with_compression(codec)
        .with_batching(BatchingOptions::enabled().with_limits(
            BATCH,
            1 << 20,
            Duration::from_millis(1),
        ));
    o.max_pending_messages = 10 * BATCH;
    o
}

fn unbatched() -> ProducerOptions {
    let mut o = ProducerOptions::default();
    o.max_pending_messages = 10 * BATCH;
    o
}

/// Allocations and bytes allocated per message in steady state.
fn alloc_report(name: &str, options: ProducerOptions, per_round: usize) {
    let mut s = Setup::new(options);
    for _ in 0..50 {
        s.round(per_round);
    }
    let rounds = 200;
    let before = s.completed;
    let region = Region::new(GLOBAL);
    for _ in 0..rounds {
        s.round(per_round);
    }
    let stats = region.change();
    let n = (s.completed - before) as f64;
    assert_eq!(
        s.completed - before,
        rounds * per_round,
        "every message completed"
    );
    println!(
        "producer/{name}: {:.4} allocations and {:.1} bytes allocated per message (steady state, {} messages)",
        stats.allocations as f64 / n,
        stats.bytes_allocated as f64 / n,
        n
    );
}

/// Thread CPU time per message (robust on a loaded machine: time spent waiting for a core is not
/// counted): the best of 7 runs of `rounds` rounds.
fn cpu_report(name: &str, options: ProducerOptions, per_round: usize, rounds: usize) {
    let thread_cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
    };
    let mut s = Setup::new(options);
    for _ in 0..rounds / 4 {
        s.round(per_round);
    }
    let mut best = f64::MAX;
    for _ in 0..7 {
        let start = thread_cpu();
        for _ in 0..rounds {
            s.round(per_round);
        }
        best = best.min((thread_cpu() - start) / (rounds * per_round) as f64);
    }
    println!(
        "producer/{name}: {best:.1} ns of thread CPU time per message (best of 7 x {} messages)",
        rounds * per_round
    );
}

fn bench(c: &mut Criterion) {
    // `PRODUCER_BENCH_PROFILE=N`: only N rounds of the batched variant, for `perf stat`/`perf record`.
    if let Some(n) = std::env::var("PRODUCER_BENCH_PROFILE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut s = Setup::new(batched(CompressionType::None));
        for _ in 0..n {
            s.round(BATCH);
        }
        println!("producer/profile: {} messages", s.completed);
        std::process::exit(0);
    }
    alloc_report("batched-100B", batched(CompressionType::None), BATCH);
    alloc_report("batched-lz4-100B", batched(CompressionType::Lz4), BATCH);
    alloc_report("unbatched-100B", unbatched(), 100);
    cpu_report("batched-100B", batched(CompressionType::None), BATCH, 1000);
    cpu_report(
        "batched-lz4-100B",
        batched(CompressionType::Lz4),
        BATCH,
        1000,
    );
    cpu_report("unbatched-100B", unbatched(), 100, 2000);

    let mut g = c.benchmark_group("producer");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, options) in [
        ("batched-100B", batched(CompressionType::None)),
        ("batched-lz4-100B", batched(CompressionType::Lz4)),
    ] {
        let mut s = Setup::new(options);
        g.bench_function(name, |b| b.iter(|| s.round(BATCH)));
    }
    g.throughput(Throughput::Elements(100));
    let mut s = Setup::new(unbatched());
    g.bench_function("unbatched-100B", |b| b.iter(|| s.round(100)));
    g.finish();
}

criterion_group! {
    name = benches;
    // plots off: the machine has no fonts for criterion's charts
    config = Criterion::default().measurement_time(Duration::from_secs(5)).without_plots();
    targets = bench
}
criterion_main!(benches);
