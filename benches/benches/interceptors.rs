//! What interceptors cost: rounds of 100 messages of 100 bytes sent (batched), received and
//! acknowledged by the pulsar-async client on tokio, through the embedded broker's in-process
//! transport (no sockets), with no interceptor and with one no-op producer and one no-op consumer
//! interceptor. Reports allocations per message (counting allocator, whole process: client,
//! broker and runtime) and then ns per message (criterion, throughput in messages).
//!
//! With no interceptor the client checks one `Option` per message and allocates nothing more,
//! so the "none" figures are the client's own; the difference with "noop" is the interceptors'
//! price (a boxed completion per send, handed over outside the client's lock).

use std::alloc::System;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pulsar_async::{
    Client, ConsumerInterceptor, InitialPosition, ProducerInterceptor, SubscriptionType,
};
use pulsar_embedded::{BrokerHandle, EmbeddedBroker, InProcess, InProcessClient};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ROUND: usize = 100;
const SIZE: usize = 100;

struct Noop;
impl ProducerInterceptor for Noop {}
impl ConsumerInterceptor for Noop {}

struct Setup {
    rt: tokio::runtime::Runtime,
    _broker: BrokerHandle,
    _client: Client<InProcess>,
    producer: pulsar_async::Producer,
    consumer: pulsar_async::Consumer,
    payload: bytes::Bytes,
}

impl Setup {
    fn new(topic: &str, intercepted: bool) -> Setup {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let (broker, client, producer, consumer) = rt.block_on(async {
            let broker = EmbeddedBroker::builder().start().await.expect("broker");
            let client = InProcessClient::builder(broker.in_process_url())
                .build()
                .expect("client");
            let mut c = client
                .consumer(topic)
                .subscription("bench")
                .subscription_type(SubscriptionType::Shared)
                .initial_position(InitialPosition::Earliest)
                .receiver_queue_size(1000);
            let mut p = client.producer(topic);
            if intercepted {
                c = c.interceptor(Arc::new(Noop));
                p = p.interceptor(Arc::new(Noop));
            }
            let consumer = c.subscribe().await.expect("consumer");
            let producer = p.create().await.expect("producer");
            (broker, client, producer, consumer)
        });
        Setup {
            rt,
            _broker: broker,
            _client: client,
            producer,
            consumer,
            payload: bytes::Bytes::from(vec![b'x'; SIZE]),
        }
    }

    /// `ROUND` messages sent (receipts awaited together), received and acknowledged.
    fn round(&self) {
        self.rt.block_on(async {
            let mut receipts = Vec::with_capacity(ROUND);
            for _ in 0..ROUND {
                let r = self.producer.send_async(self.payload.clone()).await;
                receipts.push(r.expect("send"));
            }
            for r in receipts {
                r.await.expect("receipt");
            }
            for _ in 0..ROUND {
                let m = self.consumer.receive().await.expect("receive");
                self.consumer.ack(&m).expect("ack");
            }
        });
    }
}

fn alloc_report(name: &str, s: &Setup) {
    for _ in 0..20 {
        s.round(); // warm up: buffers and tables at their steady size
    }
    let rounds = 50;
    let region = Region::new(GLOBAL);
    for _ in 0..rounds {
        s.round();
    }
    let st = region.change();
    let n = (rounds * ROUND) as f64;
    println!(
        "{name}: {:.2} allocations and {:.0} bytes allocated per message (send + receive + ack)",
        st.allocations as f64 / n,
        st.bytes_allocated as f64 / n
    );
}

fn bench(c: &mut Criterion) {
    let none = Setup::new("bench-interceptors-none", false);
    let noop = Setup::new("bench-interceptors-noop", true);
    alloc_report("none", &none);
    alloc_report("noop", &noop);
    let mut g = c.benchmark_group("interceptors");
    g.throughput(Throughput::Elements(ROUND as u64));
    g.bench_function("none", |b| b.iter(|| none.round()));
    g.bench_function("noop", |b| b.iter(|| noop.round()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
