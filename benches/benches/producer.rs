//! The producer state machine alone (no sockets, no clock): messages of 100 bytes go in with
//! `send` (each followed by `poll_timeout`, as a runtime's loop does), the SEND frames come out of
//! `poll_transmit`, an in-memory broker answers every SEND with a SEND_RECEIPT (it reads the command
//! of each frame and skips the payload), and every `SendCompleted` event is drained. Reports ns per
//! message (criterion, throughput in messages) and, before that, allocations and bytes allocated
//! per message in steady state (counting allocator), and the heap held per idle producer.
//!
//! Variants: batched (1000 messages per batch, the goal: ≤ 100 ns per message), batched with
//! LZ4, unbatched (one SEND per message) for reference, and batched over 1,000 producers on one
//! connection (messages round robin, batches closed by their 1 ms timer).
//!
//! `PRODUCER_BENCH_PROFILE=N` runs N rounds of the batched variant only (for `perf`/`callgrind`);
//! `PRODUCER_BENCH_PROFILE_PRODUCERS=P` spreads them over P producers, with
//! `PRODUCER_BENCH_PROFILE_PER_PRODUCER=M` messages each per round (default 10);
//! `PRODUCER_BENCH_BATCH_RECEIPTS=1` asks for one event per batch receipt (as the runtimes do).

mod common;

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
    if let Some(answer) = common::setup_answer(cmd) {
        return Some(answer);
    }
    Some(match cmd.kind()? {
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

/// A client with ready producers and an in-memory broker.
struct Setup {
    client: Client,
    conn: Option<ConnectionId>,
    producers: Vec<ProducerId>,
    /// The producer of the next message (round robin).
    next: usize,
    now: Instant,
    payload: Bytes,
    entry: u64,
    /// Receipts to deliver (reused).
    replies: BytesMut,
    /// Bytes of the last frame still to come in later transmits (a large payload comes as a
    /// transmit of its own, after the one holding the frame's head).
    skip: usize,
    completed: usize,
}

impl Setup {
    fn new(options: ProducerOptions) -> Setup {
        let mut options = Some(options);
        Setup::with_producers(move || options.take().unwrap_or_default(), 1)
    }

    /// `count` producers on one topic (one connection), every one ready, with the options `make`
    /// returns.
    fn with_producers(make: impl FnMut() -> ProducerOptions, count: usize) -> Setup {
        let now = Instant::now();
        let client = Client::new(ClientConfig::new("pulsar://bench:6650"), now).expect("config");
        let mut s = Setup {
            client,
            conn: None,
            producers: Vec::with_capacity(count),
            next: 0,
            now,
            payload: Bytes::from(vec![7u8; SIZE]),
            entry: 0,
            replies: BytesMut::with_capacity(64 * 1024),
            skip: 0,
            completed: 0,
        };
        s.add_producers(make, count);
        s
    }

    /// Creates `count` more producers and waits until they are ready.
    fn add_producers(&mut self, mut make: impl FnMut() -> ProducerOptions, count: usize) {
        for _ in 0..count {
            let p = self
                .client
                .create_producer(self.now, "bench-topic", make())
                .expect("producer");
            self.producers.push(p);
        }
        let mut ready = 0;
        for _ in 0..100 {
            while let Some(io) = self.client.poll_io() {
                if let IoRequest::Connect { conn: c, .. } = io {
                    self.client
                        .handle_connected(self.now, c)
                        .expect("connected");
                    self.conn = Some(c);
                }
            }
            self.exchange();
            while let Some(e) = self.client.poll_event() {
                ready += usize::from(matches!(e, Event::ProducerReady { .. }));
            }
            if ready == count {
                return;
            }
        }
        panic!("only {ready} of {count} producers became ready");
    }

    /// Moves every transmit to the broker and its answers back.
    fn exchange(&mut self) {
        while let Some(t) = self.client.poll_transmit() {
            let mut data = t.data;
            let skipped = self.skip.min(data.len());
            data.advance(skipped);
            self.skip -= skipped;
            while data.len() >= 8 {
                let total = u32::from_be_bytes(data[..4].try_into().expect("4 bytes")) as usize;
                let cmd_len = u32::from_be_bytes(data[4..8].try_into().expect("4 bytes")) as usize;
                let cmd = pb::BaseCommand::decode(&data[8..8 + cmd_len]).expect("command");
                let frame = (4 + total).min(data.len());
                self.skip = 4 + total - frame;
                data.advance(frame);
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

    /// Sends `n` messages (round robin over the producers, each send followed by `poll_timeout`
    /// as a runtime's loop does), lets the broker answer, drains the completions. With several
    /// producers the clock then moves on by the batch delay and the timers fire (closing the
    /// batches that did not fill).
    fn round(&mut self, n: usize) {
        for _ in 0..n {
            let producer = match self.producers.get(self.next) {
                Some(p) => *p,
                None => {
                    self.next = 0;
                    self.producers[0]
                }
            };
            self.next += 1;
            self.client
                .send(
                    self.now,
                    producer,
                    OutgoingMessage::new(self.payload.clone()),
                )
                .expect("send");
            std::hint::black_box(self.client.poll_timeout());
        }
        if self.producers.len() > 1 {
            self.now += Duration::from_millis(1);
            if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
                self.client.handle_timeout(self.now);
            }
        }
        self.exchange();
        while let Some(e) = self.client.poll_event() {
            match e {
                Event::SendCompleted { result, .. } => {
                    debug_assert!(result.is_ok());
                    self.completed += 1;
                }
                Event::SendsCompleted { sends, .. } => self.completed += sends.len(),
                _ => {}
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
    alloc_report_with(name, Setup::new(options), per_round);
}

/// [`alloc_report`] over [`MANY`] producers.
fn alloc_report_many(name: &str, per_round: usize) {
    alloc_report_with(name, Setup::with_producers(batched_many, MANY), per_round);
}

fn alloc_report_with(name: &str, mut s: Setup, per_round: usize) {
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
    cpu_report_with(name, Setup::new(options), per_round, rounds);
}

/// [`cpu_report`] over [`MANY`] producers.
fn cpu_report_many(name: &str, per_round: usize, rounds: usize) {
    cpu_report_with(
        name,
        Setup::with_producers(batched_many, MANY),
        per_round,
        rounds,
    );
}

fn cpu_report_with(name: &str, mut s: Setup, per_round: usize, rounds: usize) {
    let thread_cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 * 1e9 + t.tv_nsec as f64
    };
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

/// Heap held per idle producer: `count` more producers on one connection after the first one,
/// created and ready, every output drained. The bytes asked of the allocator, and the same with
/// 16 bytes of allocator overhead per live block (glibc's chunk header and rounding). The issue's
/// goal is at most 2 KiB of client memory per idle producer; the core's part is asserted below it.
fn idle_report(name: &str, make: fn() -> ProducerOptions, count: usize) {
    let mut s = Setup::new(make());
    s.producers.reserve(count);
    let region = Region::new(GLOBAL);
    s.add_producers(make, count);
    let stats = region.change();
    let held =
        stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated;
    let blocks = stats.allocations as isize - stats.deallocations as isize;
    let per = held as f64 / count as f64;
    let per_blocks = blocks as f64 / count as f64;
    let with_overhead = per + 16.0 * per_blocks;
    println!(
        "producer/idle-{name}: {per:.0} bytes held per idle producer in {per_blocks:.1} blocks \
         ({with_overhead:.0} bytes with 16 B of allocator overhead per block; {count} producers)"
    );
    assert!(
        with_overhead <= 2048.0,
        "an idle producer holds {with_overhead:.0} bytes (goal: at most 2 KiB)"
    );
}

/// The batched options with many producers: as `batched`, with a smaller pending bound each.
fn batched_many() -> ProducerOptions {
    let mut o = batched(CompressionType::None);
    o.max_pending_messages = 100;
    o
}

/// Producers of the many-producers variant, and messages per round (10 per producer).
const MANY: usize = 1000;

fn bench(c: &mut Criterion) {
    // `PRODUCER_BENCH_PROFILE=N`: only N rounds of the batched variant, for `perf stat`/`perf
    // record`/`valgrind --tool=callgrind`; `PRODUCER_BENCH_PROFILE_PRODUCERS=P` over P producers.
    if let Some(n) = std::env::var("PRODUCER_BENCH_PROFILE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let producers = std::env::var("PRODUCER_BENCH_PROFILE_PRODUCERS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        let mut s = if producers > 1 {
            Setup::with_producers(batched_many, producers)
        } else {
            Setup::new(batched(CompressionType::None))
        };
        // `PRODUCER_BENCH_BATCH_RECEIPTS=1`: one event per batch receipt (as the runtimes ask).
        if std::env::var_os("PRODUCER_BENCH_BATCH_RECEIPTS").is_some() {
            s.client.set_batch_receipts(true);
        }
        // `PRODUCER_BENCH_PROFILE_PER_PRODUCER=M`: M messages per producer and round (default
        // 10; 1 is the one-message batches of 1,000 producers at full speed).
        let per_producer = std::env::var("PRODUCER_BENCH_PROFILE_PER_PRODUCER")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(10);
        let per_round = if producers > 1 {
            per_producer * producers
        } else {
            BATCH
        };
        for _ in 0..n {
            s.round(per_round);
        }
        println!("producer/profile: {} messages", s.completed);
        std::process::exit(0);
    }
    // `PRODUCER_BENCH_IDLE=N`: only the idle report over N producers (for `heaptrack`).
    if let Some(n) = std::env::var("PRODUCER_BENCH_IDLE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        idle_report("batching", || batched(CompressionType::None), n);
        std::process::exit(0);
    }
    idle_report("batching", || batched(CompressionType::None), 1000);
    idle_report("no-batching", unbatched, 1000);
    alloc_report("batched-100B", batched(CompressionType::None), BATCH);
    alloc_report("batched-lz4-100B", batched(CompressionType::Lz4), BATCH);
    alloc_report("unbatched-100B", unbatched(), 100);
    alloc_report_many("batched-100B-1000-producers", 10 * MANY);
    cpu_report("batched-100B", batched(CompressionType::None), BATCH, 1000);
    cpu_report(
        "batched-lz4-100B",
        batched(CompressionType::Lz4),
        BATCH,
        1000,
    );
    cpu_report("unbatched-100B", unbatched(), 100, 2000);
    cpu_report_many("batched-100B-1000-producers", 10 * MANY, 20);

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
    g.throughput(Throughput::Elements(10 * MANY as u64));
    let mut s = Setup::with_producers(batched_many, MANY);
    g.bench_function("batched-100B-1000-producers", |b| {
        b.iter(|| s.round(10 * MANY))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // plots off: the machine has no fonts for criterion's charts
    config = Criterion::default().measurement_time(Duration::from_secs(5)).without_plots();
    targets = bench
}
criterion_main!(benches);
